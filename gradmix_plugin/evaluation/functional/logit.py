"""Scores computed from the logits of a linear classifier."""
import numpy as np
from scipy.special import logsumexp

from ._utils import ArrayLike, _to_numpy

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
    logits = _to_numpy(logits, 'logits').astype(np.float64)
    if logits.ndim != 2 or logits.shape[1] == 0:
        raise ValueError(f'logits must have shape (N, C), got {logits.shape}')
    if method == 'msp':
        shifted = logits - logits.max(axis=1, keepdims=True)
        return 1.0 / np.exp(shifted).sum(axis=1)
    if method == 'mls':
        return logits.max(axis=1)
    if method == 'energy':
        return temperature * logsumexp(logits / temperature, axis=1)
    raise ValueError(f'method must be one of {LOGIT_SCORES}, got {method!r}')
