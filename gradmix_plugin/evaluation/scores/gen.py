from typing import Optional, Tuple

import numpy as np

from ...registry import SCORES
from ._posthoc import probabilities
from .base_score import BaseScore


@SCORES.register_module('gen')
class GENScore(BaseScore):
    r"""Generalized entropy of the ``M`` largest softmax probabilities,
    negated: :math:`-\sum_{j \le M} p_{(j)}^\gamma (1 - p_{(j)})^\gamma`.

    `GEN: Pushing the Limits of Softmax-Based Out-of-Distribution Detection
    <https://openaccess.thecvf.com/content/CVPR2023/html/Liu_GEN_Pushing_the_Limits_of_Softmax-Based_Out-of-Distribution_Detection_CVPR_2023_paper.html>`_
    (Liu et al. 2023); OpenOOD ``gen`` (``gamma=0.1``, ``M=100``; with
    fewer than ``M`` classes, all of them).

    Args:
        gamma (float): Exponent :math:`\gamma > 0`. Defaults to 0.1.
        M (int): Probabilities used. Defaults to 100.
    """
    name = 'gen'
    needs = ('logits', )

    def __init__(self, gamma: float = 0.1, M: int = 100) -> None:
        super().__init__()
        if isinstance(gamma, bool) or not isinstance(
                gamma, (int, float)) or not gamma > 0:
            raise ValueError(f'gen: gamma must be > 0, got {gamma!r}')
        if isinstance(M, bool) or not isinstance(M, int) or M < 1:
            raise ValueError(f'gen: M must be an integer >= 1, got {M!r}')
        self.gamma, self.M = float(gamma), M

    @property
    def hyper_params(self) -> dict:
        return dict(gamma=self.gamma, M=self.M)

    def _score(self, feats: Optional[np.ndarray], logits: np.ndarray
               ) -> Tuple[np.ndarray, None]:
        probs = np.sort(probabilities(logits), axis=1)[:, -self.M:]
        return -np.sum(
            probs**self.gamma * (1 - probs)**self.gamma, axis=1), None
