"""Scores computed from the logits of a linear classifier."""
import numpy as np

from ._utils import ArrayLike, _to_numpy, logsumexp_rows

#: Scores computed from the logits of a linear classifier.
LOGIT_SCORES = ('msp', 'mls', 'energy')


def logit_scores(logits: ArrayLike,
                 method: str,
                 temperature: float = 1.0) -> np.ndarray:
    """Scores from classifier logits.

    - ``msp``: maximum softmax probability (Hendrycks & Gimpel 2017);
    - ``mls``: maximum logit (Vaze et al. 2022);
    - ``energy``: negative free energy
      :math:`T \\log \\sum_c \\exp(l_c / T)` (Liu et al. 2020).

    Args:
        logits (np.ndarray | torch.Tensor): Logits ``(N, C)``.
        method (str): ``'msp'``, ``'mls'`` or ``'energy'``.
        temperature (float): Energy temperature ``T``. Defaults to 1.0.

    Returns:
        np.ndarray: float64 scores of shape ``(N, )``.
    """
    logits = _to_numpy(logits, 'logits')
    if logits.ndim != 2 or logits.shape[1] == 0:
        raise ValueError(f'logits must have shape (N, C), got {logits.shape}')
    if method == 'mls':
        # The maximum converts exactly: no float64 copy of every logit.
        return logits.max(axis=1).astype(np.float64)
    logits = logits.astype(np.float64)
    if method == 'msp':
        shifted = logits - logits.max(axis=1, keepdims=True)
        return 1.0 / np.exp(shifted, out=shifted).sum(axis=1)
    if method == 'energy':
        if temperature == 1:  # the same numbers without two passes
            return logsumexp_rows(logits)
        return temperature * logsumexp_rows(logits / temperature)
    raise ValueError(f'method must be one of {LOGIT_SCORES}, got {method!r}')
