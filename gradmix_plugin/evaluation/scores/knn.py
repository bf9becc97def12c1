from typing import Optional, Tuple

import numpy as np

from ...registry import SCORES
from ..functional.knn import check_knn_options, knn_scores
from .base_score import BaseScore


@SCORES.register_module('knn')
class KNNScore(BaseScore):
    r"""Deep nearest-neighbour score, :math:`-\|q - b_{(k)}\|^2` of the
    L2-normalised query and its ``k``-th nearest normalised bank vector.

    `Out-of-Distribution Detection with Deep Nearest Neighbors
    <https://arxiv.org/abs/2204.06507>`_ (Sun et al. 2022); see
    :func:`~gradmix_plugin.evaluation.knn_scores` (OpenOOD ``knn`` ranks
    by the same value up to a monotone transform).

    Args:
        k (int): Which neighbour. Defaults to 50.
        chunk_size (int): Queries per faiss search. Defaults to 4096.
        use_gpu (bool, optional): faiss on the GPU; None picks it when
            available. Defaults to None.
        bank_dtype (str): ``'float32'`` or ``'float16'``.
            Defaults to ``'float32'``.
        index (str): ``'flat'`` (exact) or ``'ivf'``. Defaults to ``'flat'``.
        nlist (int): IVF lists. Defaults to 1024.
        nprobe (int): IVF lists searched. Defaults to 32.
    """
    name = 'knn'
    needs = ('feats', 'bank')
    feature = 'bank'

    def __init__(self,
                 k: int = 50,
                 chunk_size: int = 4096,
                 use_gpu: Optional[bool] = None,
                 bank_dtype: str = 'float32',
                 index: str = 'flat',
                 nlist: int = 1024,
                 nprobe: int = 32) -> None:
        super().__init__()
        check_knn_options(bank_dtype, index, nlist, nprobe)
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f'knn: k must be a positive integer, got {k!r}')
        self.k, self.chunk_size, self.use_gpu = int(k), chunk_size, use_gpu
        self.bank_dtype, self.index = bank_dtype, index
        self.nlist, self.nprobe = nlist, nprobe

    @property
    def hyper_params(self) -> dict:
        return dict(k=self.k, bank_dtype=self.bank_dtype, index=self.index,
                    nlist=self.nlist, nprobe=self.nprobe)

    def _fit(self, train, val, fit_split) -> None:
        self.bank = self._require(train, 'feats')

    def _score(self, feats: np.ndarray, logits: Optional[np.ndarray]
               ) -> Tuple[np.ndarray, None]:
        return knn_scores(
            feats,
            self.bank,
            self.k,
            self.chunk_size,
            self.use_gpu,
            bank_dtype=self.bank_dtype,
            index=self.index,
            nlist=self.nlist,
            nprobe=self.nprobe), None
