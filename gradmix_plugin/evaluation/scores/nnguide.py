from typing import Optional, Tuple

import faiss
import numpy as np

from ...registry import SCORES
from ..functional.knn import _faiss_blas_search
from ._posthoc import energy
from .base_score import BaseScore, ScoreInputError


def openood_normalize(x: np.ndarray) -> np.ndarray:
    """OpenOOD's ``normalizer``: ``x / ||x|| + 1e-10`` (the constant is
    added after the division, as there)."""
    return x / np.linalg.norm(x, axis=-1, keepdims=True) + 1e-10


@SCORES.register_module('nnguide')
class NNGuideScore(BaseScore):
    r"""Nearest-neighbour guidance: the energy of a sample times the mean
    of its ``K`` largest inner products with the guide bank
    :math:`\hat b_i E(b_i)` (normalised training features scaled by their
    energy): :math:`E(z) \cdot \frac{1}{K}\sum_{top K} \langle \hat z,
    \hat b_i E(b_i) \rangle`.

    `Nearest Neighbor Guidance for Out-of-Distribution Detection
    <https://arxiv.org/abs/2309.14888>`_ (Park et al. 2023); OpenOOD
    ``nnguide`` (``K=100``, ``alpha=0.01``: the guide bank is the first
    ``alpha`` of a shuffled training loader; here ``round(alpha * M)``
    training rows drawn with ``seed``). Exact search (faiss, float32).

    Args:
        K (int): Neighbours. Defaults to 100.
        alpha (float): Fraction of the training set in the guide bank, in
            ``(0, 1]``. Defaults to 0.01.
        seed (int): Seed of the draw. Defaults to 0.
    """
    name = 'nnguide'
    needs = ('feats', 'logits', 'fc', 'bank')

    def __init__(self, K: int = 100, alpha: float = 0.01,
                 seed: int = 0) -> None:
        super().__init__()
        if isinstance(K, bool) or not isinstance(K, int) or K < 1:
            raise ValueError(f'nnguide: K must be an integer >= 1, got {K!r}')
        if isinstance(alpha, bool) or not isinstance(
                alpha, (int, float)) or not 0 < alpha <= 1:
            raise ValueError(
                f'nnguide: alpha must be a number in (0, 1], got {alpha!r}')
        self.K, self.alpha, self.seed = K, float(alpha), seed

    @property
    def hyper_params(self) -> dict:
        return dict(K=self.K, alpha=self.alpha, seed=self.seed)

    def _fit(self, train, val, fit_split) -> None:
        feats = np.asarray(self._require(train, 'feats'), np.float64)
        size = int(round(self.alpha * feats.shape[0]))
        if size < self.K:
            raise ScoreInputError(
                f'nnguide: the guide bank has {size} vectors (alpha='
                f'{self.alpha} of {feats.shape[0]} training vectors), fewer '
                f'than K={self.K}; raise alpha or lower K')
        rows = np.sort(
            np.random.default_rng(self.seed).choice(
                feats.shape[0], size, replace=False))
        guide = openood_normalize(feats[rows]) * energy(
            self.linear(feats[rows]))[:, None]
        self.guide = np.ascontiguousarray(guide, np.float32)
        self.fit_info['guide_size'] = size

    def _score(self, feats: np.ndarray, logits: Optional[np.ndarray]
               ) -> Tuple[np.ndarray, None]:
        logits = self._logits(feats, logits)
        query = np.ascontiguousarray(
            openood_normalize(feats.astype(np.float64)), np.float32)
        with _faiss_blas_search():
            similarities, _ = faiss.knn(query, self.guide, self.K,
                                        faiss.METRIC_INNER_PRODUCT)
        return similarities.astype(np.float64).mean(axis=1) * energy(
            logits), None
