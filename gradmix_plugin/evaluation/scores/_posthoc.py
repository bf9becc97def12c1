"""Helpers shared by the post-hoc scores (OpenOOD conventions)."""
import numpy as np

from ..functional._utils import logsumexp_rows


def energy(logits: np.ndarray) -> np.ndarray:
    """``logsumexp`` of the logits over classes (OpenOOD's ``ebo``
    confidence at temperature 1), float64. float32 logits (the final
    layer's product) are exponentiated in float32, as OpenOOD does, and
    summed in float64."""
    logits = np.asarray(logits)
    if logits.dtype != np.float32:
        return logsumexp_rows(np.asarray(logits, np.float64))
    top = logits.max(axis=1, keepdims=True)
    shifted = logits - top
    np.exp(shifted, out=shifted)
    return np.log(shifted.sum(axis=1, dtype=np.float64)) + top[:, 0]


def probabilities(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64 (``exp(l - max) / sum``)."""
    logits = np.asarray(logits, np.float64)
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def gram(x: np.ndarray, dtype=np.float64) -> np.ndarray:
    """``x^T x`` with one symmetric rank-k update (BLAS ``dsyrk`` /
    ``ssyrk`` for ``dtype`` float64 / float32, half a matrix product),
    both triangles filled, returned as float64."""
    from scipy.linalg.blas import dsyrk, ssyrk
    syrk = ssyrk if np.dtype(dtype) == np.float32 else dsyrk
    upper = syrk(1.0, np.asarray(x, dtype), trans=1).astype(np.float64)
    return np.triu(upper) + np.triu(upper, 1).T


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
    """Boolean mask of the ``k`` largest entries of every row, in
    O(N D) (``np.partition``); ties at the ``k``-th value: the lowest
    indices."""
    if k <= 0:
        return np.zeros(x.shape, bool)
    if k >= x.shape[1]:
        return np.ones(x.shape, bool)
    kth = np.partition(x, x.shape[1] - k, axis=1)[:, x.shape[1] - k, None]
    mask = x > kth
    missing = k - mask.sum(axis=1, keepdims=True)
    tied = x == kth
    return mask | (tied & (np.cumsum(tied, axis=1) <= missing))
