from typing import Optional, Tuple

import numpy as np

from ...registry import SCORES
from ._posthoc import check_percentile, energy
from .base_score import BaseScore


@SCORES.register_module('react')
class ReActScore(BaseScore):
    r"""ReAct: energy of the logits of features clipped at a threshold,
    :math:`\log \sum_c \exp(W_c \min(z, t) + b_c)`, with :math:`t` the
    ``percentile``-th percentile of all held-out known feature values.

    `ReAct: Out-of-distribution Detection With Rectified Activations
    <https://arxiv.org/abs/2111.12797>`_ (Sun et al. 2021); OpenOOD
    ``react`` (percentile 90, threshold from the ID validation set,
    ``np.percentile`` of the flattened features). Predicts with the
    clipped logits.

    Args:
        percentile (float): In ``[0, 100]``. Defaults to 90.
    """
    name = 'react'
    needs = ('feats', 'fc', 'val')
    uses_val = True

    def __init__(self, percentile: float = 90) -> None:
        super().__init__()
        self.percentile = check_percentile('react: percentile', percentile)

    @property
    def hyper_params(self) -> dict:
        return dict(percentile=self.percentile)

    def _fit(self, train, val, fit_split) -> None:
        feats = self._require(fit_split, 'feats',
                              self.fit_info.get('fit_on', 'train'))
        self.threshold = float(
            np.percentile(np.asarray(feats).ravel(), self.percentile))
        self.fit_info['threshold'] = self.threshold

    def _score(self, feats: np.ndarray, logits: Optional[np.ndarray]
               ) -> Tuple[np.ndarray, np.ndarray]:
        clipped = self.linear32(
            np.minimum(feats, np.float32(self.threshold), dtype=np.float32))
        return energy(clipped), clipped.argmax(axis=1)
