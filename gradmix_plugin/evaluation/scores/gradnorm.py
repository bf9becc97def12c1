from typing import Tuple

import numpy as np

from ...registry import SCORES
from ._posthoc import probabilities
from .base_score import BaseScore, ScoreInputError


@SCORES.register_module('gradnorm')
class GradNormScore(BaseScore):
    r"""GradNorm in closed form: the L1 norm of the gradient, with respect
    to the final layer's weight, of the cross-entropy between the softmax
    and an all-ones target, :math:`\|(C p - 1) z^T\|_1 = \|z\|_1
    \sum_c |C p_c - 1|`.

    `On the Importance of Gradients for Detecting Distributional Shifts in
    the Wild <https://arxiv.org/abs/2110.00218>`_ (Huang et al. 2021);
    OpenOOD ``gradnorm`` computes the same per sample with a backward pass
    through ``fc`` (``targets = ones``, so ``C`` times the paper's
    uniform-target KL gradient). ``logits`` must be the final linear
    layer's output for ``feats`` (``feats @ W^T + b``).
    """
    name = 'gradnorm'
    needs = ('feats', 'logits')

    def _score(self, feats: np.ndarray, logits: np.ndarray
               ) -> Tuple[np.ndarray, np.ndarray]:
        if feats.shape[0] != logits.shape[0]:
            raise ScoreInputError('gradnorm: feats and logits differ in rows')
        probs = probabilities(logits)
        num_classes = probs.shape[1]
        scores = np.abs(feats.astype(np.float64)).sum(axis=1) * np.abs(
            num_classes * probs - 1).sum(axis=1)
        return scores, logits.argmax(axis=1)
