from typing import Optional, Tuple

import numpy as np

from ...registry import SCORES
from ._posthoc import check_percentile, energy, kept_count, top_k_mask
from .base_score import BaseScore


@SCORES.register_module('scale')
class SCALEScore(BaseScore):
    r"""SCALE: scale every feature vector by :math:`\exp(s_1 / s_2)`, with
    :math:`s_1` its sum and :math:`s_2` the sum of its
    :math:`k = D - \mathrm{round}(D p / 100)` largest entries, then take
    the energy of the final layer's logits.

    `Scaling for Training Time and Post-hoc Out-of-distribution Detection
    Enhancement <https://arxiv.org/abs/2310.00227>`_ (Xu et al. 2024);
    OpenOOD ``scale`` (``ScaleNet.forward_threshold`` on pooled features,
    percentile 85). Predicts with the scaled logits.

    Args:
        percentile (float): In ``[0, 100]``. Defaults to 85.
    """
    name = 'scale'
    needs = ('feats', 'fc')

    def __init__(self, percentile: float = 85) -> None:
        super().__init__()
        self.percentile = check_percentile('scale: percentile', percentile)

    @property
    def hyper_params(self) -> dict:
        return dict(percentile=self.percentile)

    def _score(self, feats: np.ndarray, logits: Optional[np.ndarray]
               ) -> Tuple[np.ndarray, np.ndarray]:
        feats = np.asarray(feats, np.float32)
        k = kept_count(feats.shape[1], self.percentile)
        total = feats.sum(axis=1, dtype=np.float64)
        kept = np.where(top_k_mask(feats, k), feats,
                        np.float32(0)).sum(axis=1, dtype=np.float64)
        scaled = feats * np.exp(total / kept).astype(np.float32)[:, None]
        logits = self.linear32(scaled)
        return energy(logits), logits.argmax(axis=1)
