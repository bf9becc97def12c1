"""Open-set recognition scores and metrics as pure functions.

Everything here works on NumPy arrays (PyTorch tensors are accepted and
moved to the CPU) and returns NumPy arrays or Python floats, so saved
features and scores can be evaluated without a runner. By topic:

- :mod:`.knn`: exact and IVF kNN search with faiss, :func:`knn_scores`
  and :func:`class_knn_scores`;
- :mod:`.gaussian`: :func:`fit_tied_gaussian` and
  :func:`mahalanobis_scores`;
- :mod:`.logit`: :func:`logit_scores` (MSP, max logit, energy);
- :mod:`.ranking`: AUROC, AUPR, FPR@95, OSCR
  (:func:`compute_osr_metrics`);
- :mod:`.openood`: the same metrics as OpenOOD v1.5 computes them
  (:func:`openood_metrics`).

Conventions: a higher score means "more likely a known class"; metric
values are fractions in ``[0, 1]`` (``OSRMetric`` reports percentages).
The registered score classes (``gradmix_plugin.evaluation.scores``) build
on these functions.
"""
from ._utils import BANK_BLOCK_ROWS, ArrayLike, l2_normalize
from .gaussian import (
                       MAHALANOBIS_MAX_CONDITION,
                       fit_tied_gaussian,
                       mahalanobis_scores,
)
from .knn import (
                       BANK_DTYPES,
                       FAISS_BLAS_THRESHOLD,
                       FAISS_DATABASE_BLOCK,
                       IVF_TRAIN_PER_LIST,
                       KNN_INDEXES,
                       check_knn_options,
                       class_knn_scores,
                       faiss_gpu_available,
                       knn_scores,
)
from .logit import LOGIT_SCORES, logit_scores
from .openood import OPENOOD_METRICS, openood_metrics
from .ranking import (
                       CLASSIFICATION_METRICS,
                       RANKING_METRICS,
                       compute_osr_metrics,
                       fpr_at_95_tpr,
                       oscr,
                       oscr_arpl,
                       oscr_curve,
)

#: Scores that search the kNN bank.
KNN_SCORES = ('class_knn', 'knn')
#: Scores of a Gaussian model fitted to the bank.
GAUSSIAN_SCORES = ('mahalanobis', )
#: The bank scores of the six original scores (``OSRBankHook``).
BANK_SCORES = KNN_SCORES + GAUSSIAN_SCORES
#: The six original scores, in report order: ``OSRMetric``'s default.
#: Every registered score (``gradmix_plugin.registry.SCORES``) is accepted.
OSR_SCORES = BANK_SCORES + LOGIT_SCORES

__all__ = [
    'ArrayLike', 'BANK_BLOCK_ROWS', 'BANK_DTYPES', 'BANK_SCORES',
    'CLASSIFICATION_METRICS', 'FAISS_BLAS_THRESHOLD', 'FAISS_DATABASE_BLOCK',
    'GAUSSIAN_SCORES', 'IVF_TRAIN_PER_LIST', 'KNN_INDEXES', 'KNN_SCORES',
    'LOGIT_SCORES', 'MAHALANOBIS_MAX_CONDITION', 'OPENOOD_METRICS',
    'OSR_SCORES', 'RANKING_METRICS', 'check_knn_options',
    'class_knn_scores', 'compute_osr_metrics', 'faiss_gpu_available',
    'fit_tied_gaussian', 'fpr_at_95_tpr', 'knn_scores', 'l2_normalize',
    'logit_scores', 'mahalanobis_scores', 'openood_metrics', 'oscr',
    'oscr_arpl', 'oscr_curve'
]
