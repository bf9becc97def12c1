from typing import Optional, Tuple

import numpy as np

from ...registry import SCORES
from ..functional.knn import check_knn_options, class_knn_scores
from .base_score import BaseScore


@SCORES.register_module('class_knn')
class ClassKNNScore(BaseScore):
    r"""Class-wise kNN score of GradMix, :math:`\max_c p_c` with
    :math:`p_c \propto \max(s_c, 0)`, :math:`s_c` the sum of the top-``k``
    cosine similarities to class ``c``'s bank vectors; predicts
    :math:`\arg\max_c s_c`.

    `GradMix <https://arxiv.org/abs/2505.12803>`_; see
    :func:`~gradmix_plugin.evaluation.class_knn_scores`.

    Args:
        k (int): Neighbours per class. Defaults to 3.
        num_classes (int, optional): Known classes. Defaults to the final
            layer's outputs when given to :meth:`fit`, else the width of the
            training logits, else ``max(labels) + 1``.
        chunk_size (int): Queries per faiss search. Defaults to 4096.
        use_gpu (bool, optional): faiss on the GPU. Defaults to None.
        bank_dtype (str): ``'float32'`` or ``'float16'``.
            Defaults to ``'float32'``.
    """
    name = 'class_knn'
    needs = ('feats', 'bank')
    feature = 'bank'

    def __init__(self,
                 k: int = 3,
                 num_classes: Optional[int] = None,
                 chunk_size: int = 4096,
                 use_gpu: Optional[bool] = None,
                 bank_dtype: str = 'float32') -> None:
        super().__init__()
        check_knn_options(bank_dtype)
        self.k, self.num_classes = k, num_classes
        self.chunk_size, self.use_gpu = chunk_size, use_gpu
        self.bank_dtype = bank_dtype

    @property
    def hyper_params(self) -> dict:
        return dict(k=self.k, num_classes=self.num_classes,
                    bank_dtype=self.bank_dtype)

    def _fit(self, train, val, fit_split) -> None:
        self.bank = self._require(train, 'feats')
        self.bank_labels = self._require(train, 'labels')
        num_classes = self.num_classes
        if num_classes is None:
            if self.fc_weight is not None:
                num_classes = self.fc_weight.shape[0]
            elif 'logits' in train:
                num_classes = train['logits'].shape[1]
            else:
                num_classes = int(np.max(self.bank_labels)) + 1
        self.fit_num_classes = int(num_classes)
        self.fit_info['num_classes'] = self.fit_num_classes

    def _score(self, feats: np.ndarray, logits: Optional[np.ndarray]
               ) -> Tuple[np.ndarray, np.ndarray]:
        return class_knn_scores(
            feats,
            self.bank,
            self.bank_labels,
            self.fit_num_classes,
            self.k,
            self.chunk_size,
            self.use_gpu,
            bank_dtype=self.bank_dtype)
