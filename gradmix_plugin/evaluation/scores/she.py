import warnings
from typing import Optional, Tuple

import numpy as np

from ...registry import SCORES
from .base_score import BaseScore, ScoreInputError

#: Similarities of ``SHEScore`` (OpenOOD's ``distance``).
SHE_METRICS = ('inner_product', 'euclidean', 'cosine')


@SCORES.register_module('she')
class SHEScore(BaseScore):
    r"""Simplified Hopfield energy: the similarity of a feature to the
    stored pattern of its predicted class,
    :math:`\langle z, \bar z_{\hat y} \rangle`, where :math:`\bar z_c` is
    the mean training feature of the samples of class ``c`` that the
    model classifies correctly.

    `Out-of-Distribution Detection based on In-Distribution Data Patterns
    Memorization with Modern Hopfield Energy
    <https://openreview.net/forum?id=KkazG4lgKL>`_ (Zhang et al. 2023);
    OpenOOD ``she`` (``metric='inner_product'``; ``'euclidean'`` is minus
    the distance, ``'cosine'`` the cosine similarity). The training
    predictions are the final layer's argmax. A class without any correctly
    classified training sample (OpenOOD: a NaN pattern) gets the mean of
    all its training samples, with a ``UserWarning`` and the classes in
    :attr:`fit_info`.

    Args:
        metric (str): One of :data:`SHE_METRICS`.
            Defaults to ``'inner_product'``.
    """
    name = 'she'
    needs = ('feats', 'logits', 'fc', 'bank')

    def __init__(self, metric: str = 'inner_product') -> None:
        super().__init__()
        if metric not in SHE_METRICS:
            raise ValueError(
                f'she: metric must be one of {SHE_METRICS}, got {metric!r}')
        self.metric = metric

    @property
    def hyper_params(self) -> dict:
        return dict(metric=self.metric)

    def _fit(self, train, val, fit_split) -> None:
        feats = np.asarray(self._require(train, 'feats'))
        labels = np.asarray(self._require(train, 'labels'),
                            np.int64).reshape(-1)
        preds = self.linear(feats).argmax(axis=1)
        num_classes = self.fc_weight.shape[0]
        self.patterns = np.zeros((num_classes, feats.shape[1]))
        missing, uncorrected = [], []
        for c in range(num_classes):
            rows = (labels == c) & (preds == c)
            if not rows.any():
                rows = labels == c
                (uncorrected if rows.any() else missing).append(c)
            if rows.any():
                self.patterns[c] = feats[rows].mean(axis=0,
                                                    dtype=np.float64)
        if missing:
            raise ScoreInputError(
                f'she: classes {missing} have no training sample, so they '
                'have no stored pattern; build the bank from every known '
                'class')
        if uncorrected:
            warnings.warn(
                f'she: classes {uncorrected} have no correctly classified '
                'training sample; their stored pattern is the mean of all '
                'their training samples (OpenOOD would give NaN scores); '
                'the model is probably undertrained',
                stacklevel=3)
        self.fit_info['classes_without_correct_samples'] = uncorrected
        self.fit_info['correct_fraction'] = float(np.mean(preds == labels))

    def _score(self, feats: np.ndarray, logits: Optional[np.ndarray]
               ) -> Tuple[np.ndarray, np.ndarray]:
        feats = feats.astype(np.float64)
        logits = self._logits(feats, logits)
        preds = logits.argmax(axis=1)
        pattern = self.patterns[preds]
        if self.metric == 'inner_product':
            scores = (feats * pattern).sum(axis=1)
        elif self.metric == 'euclidean':
            scores = -np.linalg.norm(feats - pattern, axis=1)
        else:
            scores = (feats * pattern).sum(axis=1) / np.maximum(
                np.linalg.norm(feats, axis=1) *
                np.linalg.norm(pattern, axis=1), 1e-8)
        return scores, preds
