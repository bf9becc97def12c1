from typing import Optional, Tuple

import numpy as np

from ...registry import SCORES
from .base_score import BaseScore


@SCORES.register_module('fdbd')
class FDBDScore(BaseScore):
    r"""Fast decision-boundary distance: the mean over classes of the
    distance from the feature to the decision boundary between the
    predicted class :math:`\hat y` and class ``c``,
    :math:`|l_c - l_{\hat y}| / \|w_c - w_{\hat y}\|`, summed over
    :math:`c \ne \hat y` and divided by :math:`\|z - \bar z\|` (the
    distance to the mean training feature; with
    ``distance_as_normalizer=False``, by :math:`\|z\|`).

    `Fast Decision Boundary based Out-of-Distribution Detector
    <https://arxiv.org/abs/2312.11536>`_ (Liu and Qin 2024); OpenOOD
    ``fdbd`` (``distance_as_normalizer=True``; the sum, not the mean, as
    there). Predicts the logits' argmax.

    Args:
        distance_as_normalizer (bool): Divide by the distance to the
            training mean (True) or by the feature norm. Defaults to True.
    """
    name = 'fdbd'
    needs = ('feats', 'logits', 'fc', 'bank')

    def __init__(self, distance_as_normalizer: bool = True) -> None:
        super().__init__()
        if not isinstance(distance_as_normalizer, bool):
            raise ValueError(
                'fdbd: distance_as_normalizer must be True or False, got '
                f'{distance_as_normalizer!r}')
        self.distance_as_normalizer = distance_as_normalizer

    @property
    def hyper_params(self) -> dict:
        return dict(distance_as_normalizer=self.distance_as_normalizer)

    def _fit(self, train, val, fit_split) -> None:
        self.train_mean = np.mean(
            self._require(train, 'feats'), axis=0, dtype=np.float64)
        w = self.fc_weight
        # ||w_c - w_p|| for every pair, 1 on the diagonal (as OpenOOD).
        squared = (w**2).sum(axis=1)
        gram = w @ w.T
        distances = np.sqrt(
            np.maximum(squared[:, None] + squared[None, :] - 2 * gram, 0))
        np.fill_diagonal(distances, 1.0)
        self.denominators = distances

    def _score(self, feats: np.ndarray, logits: Optional[np.ndarray]
               ) -> Tuple[np.ndarray, np.ndarray]:
        feats = feats.astype(np.float64)
        logits = self._logits(feats, logits)
        logits = logits.astype(np.float64)
        preds = logits.argmax(axis=1)
        top = logits[np.arange(logits.shape[0]), preds]
        margins = np.abs(logits - top[:, None]) / self.denominators[preds]
        normalizer = np.linalg.norm(
            feats - self.train_mean if self.distance_as_normalizer else
            feats, axis=1)
        return margins.sum(axis=1) / normalizer, preds
