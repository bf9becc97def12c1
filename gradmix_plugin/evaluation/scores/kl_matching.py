from typing import Optional, Tuple

import numpy as np
from scipy.special import xlogy

from ...registry import SCORES
from ._posthoc import probabilities
from .base_score import BaseScore, ScoreInputError


@SCORES.register_module('klm')
class KLMatchingScore(BaseScore):
    r"""KL matching: minus the smallest KL divergence between the
    softmax :math:`p` of a sample and the class templates,
    :math:`-\min_c \mathrm{KL}(p \,\|\, \bar p_c)`, where
    :math:`\bar p_c` is the mean softmax of the held-out known samples
    predicted as class ``c``.

    `Scaling Out-of-Distribution Detection for Real-World Settings
    <https://arxiv.org/abs/1911.11132>`_ (Hendrycks et al. 2022); OpenOOD
    ``klm`` (templates from the ID validation set, :math:`\mathrm{KL}(p\|q)
    = \sum_{p_i \ne 0} p_i \log(p_i / q_i)`). Classes that no fit sample is
    predicted as have no template; OpenOOD's mean of an empty set is NaN,
    here they are left out (their number is recorded).
    """
    name = 'klm'
    needs = ('logits', 'val')
    uses_val = True

    def _fit(self, train, val, fit_split) -> None:
        probs = probabilities(self._split_logits(fit_split))
        preds = probs.argmax(axis=1)
        classes = np.unique(preds)
        self.templates = np.stack(
            [probs[preds == c].mean(axis=0) for c in classes])
        self.template_classes = classes
        self.fit_info['classes_without_template'] = int(probs.shape[1] -
                                                        classes.size)

    def _score(self, feats: Optional[np.ndarray], logits: Optional[np.ndarray]
               ) -> Tuple[np.ndarray, None]:
        logits = self._logits(feats, logits)
        if logits.shape[1] != self.templates.shape[1]:
            raise ScoreInputError(
                f'klm: the logits have {logits.shape[1]} classes, the '
                f'templates {self.templates.shape[1]}')
        probs = probabilities(logits)
        # KL(p || q_c) = sum p log p - sum p log q_c, with p log p = 0 and
        # p log q = 0 at p = 0, and +inf where p > 0 but q = 0: one matrix
        # product, O(N C^2) time and O(N C) memory.
        entropy_term = xlogy(probs, probs).sum(axis=1, keepdims=True)
        log_templates = np.log(self.templates, where=self.templates > 0,
                               out=np.zeros_like(self.templates))
        cross = probs @ log_templates.T
        impossible = (probs > 0).astype(np.float64) @ (
            self.templates <= 0).T.astype(np.float64)
        cross[impossible > 0] = -np.inf
        return -(entropy_term - cross).min(axis=1), None
