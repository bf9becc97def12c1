from typing import Optional, Tuple

import numpy as np

from ...registry import SCORES
from ._posthoc import check_percentile, energy, kept_count, top_k_mask
from .base_score import BaseScore


@SCORES.register_module('ash')
class ASHScore(BaseScore):
    r"""ASH-B on pooled features: keep the
    :math:`k = D - \mathrm{round}(D p / 100)` largest entries of every
    feature vector, set each to the vector's sum divided by :math:`k` and
    the others to zero, then take the energy of the final layer's logits.

    `Extremely Simple Activation Shaping for Out-of-Distribution Detection
    <https://arxiv.org/abs/2209.09858>`_ (Djurisic et al. 2023); OpenOOD
    ``ash`` (``ASHNet.forward_threshold``: ``ash_b`` on the pooled
    ``(N, D, 1, 1)`` features, percentile 90). Ties at the ``k``-th value:
    the lowest feature indices are kept. Predicts with the shaped logits.

    Args:
        percentile (float): In ``[0, 100]``. Defaults to 90.
    """
    name = 'ash'
    needs = ('feats', 'fc')

    def __init__(self, percentile: float = 90) -> None:
        super().__init__()
        self.percentile = check_percentile('ash: percentile', percentile)

    @property
    def hyper_params(self) -> dict:
        return dict(percentile=self.percentile)

    def _score(self, feats: np.ndarray, logits: Optional[np.ndarray]
               ) -> Tuple[np.ndarray, np.ndarray]:
        feats = np.asarray(feats, np.float32)
        k = kept_count(feats.shape[1], self.percentile)
        fill = feats.sum(axis=1, keepdims=True, dtype=np.float64) / max(k, 1)
        shaped = np.where(top_k_mask(feats, k), fill.astype(np.float32),
                          np.float32(0))
        logits = self.linear32(shaped)
        return energy(logits), logits.argmax(axis=1)
