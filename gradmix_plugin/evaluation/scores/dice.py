from typing import Optional, Tuple

import numpy as np

from ...registry import SCORES
from ._posthoc import check_percentile, energy
from .base_score import BaseScore


@SCORES.register_module('dice')
class DICEScore(BaseScore):
    r"""DICE: energy of logits from a sparsified final layer, keeping the
    weights :math:`W_{cd}` whose contribution :math:`\bar z_d W_{cd}` to
    the mean training feature :math:`\bar z` is above its ``p``-th
    percentile (over all ``C x D`` entries).

    `DICE: Leveraging Sparsification for Out-of-Distribution Detection
    <https://arxiv.org/abs/2111.09805>`_ (Sun and Li 2022); OpenOOD
    ``dice`` (``p=90``, mean over the ID training set). Predicts with the
    sparsified logits.

    Args:
        p (float): Percentile in ``[0, 100]``. Defaults to 90.
    """
    name = 'dice'
    needs = ('feats', 'fc', 'bank')

    def __init__(self, p: float = 90) -> None:
        super().__init__()
        self.p = check_percentile('dice: p', p)

    @property
    def hyper_params(self) -> dict:
        return dict(p=self.p)

    def _fit(self, train, val, fit_split) -> None:
        self.mean_feature = np.mean(
            self._require(train, 'feats'), axis=0, dtype=np.float64)
        contribution = self.mean_feature[None, :] * self.fc_weight
        self.threshold = float(np.percentile(contribution, self.p))
        self.masked_weight = self.fc_weight * (contribution > self.threshold)
        self._masked_weight32 = np.ascontiguousarray(self.masked_weight.T,
                                                     np.float32)
        self.fit_info['threshold'] = self.threshold
        self.fit_info['kept_weights'] = float(
            (contribution > self.threshold).mean())

    def _score(self, feats: np.ndarray, logits: Optional[np.ndarray]
               ) -> Tuple[np.ndarray, np.ndarray]:
        logits = np.asarray(feats, np.float32) @ self._masked_weight32
        logits += self.fc_bias.astype(np.float32)
        return energy(logits), logits.argmax(axis=1)
