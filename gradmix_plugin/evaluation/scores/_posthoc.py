"""Helpers shared by the post-hoc scores (OpenOOD conventions)."""
import numpy as np
from scipy.special import logsumexp, softmax


def energy(logits: np.ndarray) -> np.ndarray:
    """``logsumexp`` of float64 logits over classes (OpenOOD's ``ebo``
    confidence at temperature 1)."""
    return logsumexp(np.asarray(logits, np.float64), axis=1)


def probabilities(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64."""
    return softmax(np.asarray(logits, np.float64), axis=1)


def check_percentile(name: str, value: float) -> float:
    """A percentile in ``[0, 100]``, else ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(
            value, (int, float, np.number)) or not 0 <= value <= 100:
        raise ValueError(
            f'{name} must be a number in [0, 100], got {value!r}')
    return float(value)


def kept_count(dim: int, percentile: float) -> int:
    """Activations kept by ASH / SCALE: ``dim - round(dim * p / 100)``
    (NumPy rounding, half to even, as OpenOOD)."""
    return dim - int(np.round(dim * percentile / 100.0))


def top_k_mask(x: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the ``k`` largest entries of every row (ties at the
    boundary: the lowest indices of ``np.argsort(-x, kind='stable')``)."""
    mask = np.zeros(x.shape, bool)
    if k > 0:
        order = np.argsort(-x, axis=1, kind='stable')[:, :k]
        np.put_along_axis(mask, order, True, axis=1)
    return mask
