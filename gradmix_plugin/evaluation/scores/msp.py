from typing import Optional, Tuple

import numpy as np

from ...registry import SCORES
from ..functional.logit import logit_scores
from .base_score import BaseScore


@SCORES.register_module('msp')
class MSPScore(BaseScore):
    r"""Maximum softmax probability, :math:`\max_c \mathrm{softmax}(l)_c`.

    `A Baseline for Detecting Misclassified and Out-of-Distribution Examples
    in Neural Networks <https://arxiv.org/abs/1610.02136>`_ (Hendrycks and
    Gimpel 2017); OpenOOD ``msp``.
    """
    name = 'msp'
    needs = ('logits', )

    def _score(self, feats: Optional[np.ndarray], logits: np.ndarray
               ) -> Tuple[np.ndarray, None]:
        return logit_scores(logits, 'msp'), None
