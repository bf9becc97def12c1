from typing import Optional, Tuple

import numpy as np
from scipy.linalg import eigh
from scipy.spatial.distance import cdist

from ...registry import SCORES
from ._posthoc import gram
from .base_score import BaseScore, ScoreInputError


def _whitener(centred: np.ndarray) -> np.ndarray:
    """``A`` with ``A A^T`` the pseudo-inverse of the empirical covariance
    of ``centred`` (``sklearn.covariance.EmpiricalCovariance(
    assume_centered=False).precision_``: re-centred, divided by ``M``,
    ``pinvh``), so that squared Mahalanobis distances are squared Euclidean
    distances of ``x @ A``. ``centred`` is modified in place."""
    centred -= centred.mean(axis=0)
    covariance = gram(centred) / centred.shape[0]
    eigenvalues, eigenvectors = eigh(covariance)
    # pinvh's cut-off: eigenvalues below max * D * eps count as zero.
    keep = eigenvalues > eigenvalues.max() * covariance.shape[0] * \
        np.finfo(np.float64).eps
    return eigenvectors[:, keep] / np.sqrt(eigenvalues[keep])


@SCORES.register_module('rmds')
class RMDSScore(BaseScore):
    r"""Relative Mahalanobis distance: the largest class score
    :math:`-d_\Sigma(z, \mu_c) + d_{\Sigma_0}(z, \mu_0)`, with
    :math:`d` squared Mahalanobis distances, :math:`\mu_c` the class means
    and :math:`\Sigma` the tied covariance of the class-centred training
    features, :math:`\mu_0, \Sigma_0` the mean and covariance of all
    training features (the background).

    `A Simple Fix to Mahalanobis Distance for Improving Near-OOD Detection
    <https://arxiv.org/abs/2106.09022>`_ (Ren et al. 2021); OpenOOD
    ``rmds`` (``sklearn`` ``EmpiricalCovariance`` precisions, i.e.
    pseudo-inverses; float64 here, float32 in OpenOOD). Predicts the class
    with the largest score.
    """
    name = 'rmds'
    needs = ('feats', 'bank')

    def _fit(self, train, val, fit_split) -> None:
        feats = np.asarray(self._require(train, 'feats'), np.float64)
        labels = np.asarray(self._require(train, 'labels'),
                            np.int64).reshape(-1)
        self.classes, inverse = np.unique(labels, return_inverse=True)
        if self.classes.size < 2:
            raise ScoreInputError(
                f'rmds needs training features of at least 2 classes, got '
                f'{self.classes.tolist()}')
        counts = np.bincount(inverse)
        self.class_means = np.zeros((self.classes.size, feats.shape[1]))
        np.add.at(self.class_means, inverse, feats)
        self.class_means /= counts[:, None]
        self.class_whitener = _whitener(feats - self.class_means[inverse])
        self.background_mean = feats.mean(axis=0)
        self.background_whitener = _whitener(feats - self.background_mean)
        self.fit_info['num_classes'] = int(self.classes.size)

    def _score(self, feats: np.ndarray, logits: Optional[np.ndarray]
               ) -> Tuple[np.ndarray, np.ndarray]:
        feats = feats.astype(np.float64)
        class_distances = cdist(feats @ self.class_whitener,
                                self.class_means @ self.class_whitener,
                                'sqeuclidean')
        background = (((feats - self.background_mean) @
                       self.background_whitener)**2).sum(axis=1)
        scores = -class_distances + background[:, None]
        return scores.max(axis=1), self.classes[scores.argmax(axis=1)]
