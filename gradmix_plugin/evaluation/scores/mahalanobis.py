from typing import Optional, Tuple, Union

import numpy as np

from ...registry import SCORES
from ..functional.gaussian import fit_tied_gaussian, mahalanobis_scores
from .base_score import BaseScore


@SCORES.register_module('mahalanobis')
class MahalanobisScore(BaseScore):
    r"""Mahalanobis score with class means and a tied covariance,
    :math:`\max_c -(q - \mu_c)^T \Sigma^{-1} (q - \mu_c)`; predicts the
    nearest mean's class.

    `A Simple Unified Framework for Detecting Out-of-Distribution Samples
    and Adversarial Attacks <https://arxiv.org/abs/1807.03888>`_ (Lee et
    al. 2018); OpenOOD ``mds``. See
    :func:`~gradmix_plugin.evaluation.mahalanobis_scores`.

    Args:
        shrinkage (str | float): Covariance shrinkage, see
            :func:`~gradmix_plugin.evaluation.fit_tied_gaussian`.
            Defaults to ``'auto'``.
    """
    name = 'mahalanobis'
    needs = ('feats', 'bank')
    feature = 'bank'

    def __init__(self, shrinkage: Union[str, float] = 'auto') -> None:
        super().__init__()
        self.shrinkage = shrinkage

    @property
    def hyper_params(self) -> dict:
        return dict(shrinkage=self.shrinkage)

    def _fit(self, train, val, fit_split) -> None:
        self.bank = self._require(train, 'feats')
        self.bank_labels = self._require(train, 'labels')
        # Checks the bank (and warns about shrinkage) once, at fit time.
        self.classes, self.means, self.covariance = fit_tied_gaussian(
            self.bank, self.bank_labels, self.shrinkage)

    def _score(self, feats: np.ndarray, logits: Optional[np.ndarray]
               ) -> Tuple[np.ndarray, np.ndarray]:
        return mahalanobis_scores(
            feats, self.bank, self.bank_labels, self.shrinkage,
            fitted=(self.classes, self.means, self.covariance))
