from typing import Optional, Tuple

import numpy as np

from ...registry import SCORES
from ..functional.logit import logit_scores
from .base_score import BaseScore


@SCORES.register_module('mls')
class MaxLogitScore(BaseScore):
    r"""Maximum logit, :math:`\max_c l_c`.

    `Open-Set Recognition: a Good Closed-Set Classifier is All You Need?
    <https://arxiv.org/abs/2110.06207>`_ (Vaze et al. 2022); OpenOOD ``mls``.
    """
    name = 'mls'
    needs = ('logits', )

    def _score(self, feats: Optional[np.ndarray], logits: np.ndarray
               ) -> Tuple[np.ndarray, None]:
        return logit_scores(logits, 'mls'), None
