"""Open-set recognition scores and metrics as pure functions.

Everything here works on NumPy arrays (PyTorch tensors are accepted and
moved to the CPU) and returns NumPy arrays or Python floats, so saved
features and scores can be evaluated without a runner.

Conventions:

- A higher score means "more likely a known class"; known samples are the
  positive class of every ranking metric except ``fpr95_ood_pos`` and the
  OpenOOD-compatible values (:func:`openood_metrics`), where unknown (OOD)
  samples are the positives.
- Metric values are fractions in ``[0, 1]`` (``OSRMetric`` reports them as
  percentages).
- kNN searches are exact by default: faiss's brute-force inner-product
  search (``faiss.knn``, ``faiss.knn_gpu`` on the GPU) over L2-normalised
  vectors, on the GPU when the installed faiss has GPU support and a GPU is
  visible, on the CPU otherwise. The normalised bank is kept once, in
  float32 or float16 (``bank_dtype``), and searched in blocks of
  :data:`BANK_BLOCK_ROWS` rows converted to float32; queries are searched
  in chunks of ``chunk_size`` rows, so that memory stays bounded.
  :func:`knn_scores` can also search an approximate IVF index
  (``index='ivf'``).
"""
import warnings
from contextlib import contextmanager
from functools import partial
from typing import Dict, Iterator, Optional, Tuple, Union

import faiss
import numpy as np
import torch
from scipy.linalg import cholesky, solve_triangular
from scipy.spatial.distance import cdist
from scipy.special import logsumexp
from sklearn.covariance import ledoit_wolf, shrunk_covariance
from sklearn.metrics import (
    auc,
    average_precision_score,
    precision_recall_curve,
    roc_auc_score,
    roc_curve,
)

ArrayLike = Union[np.ndarray, torch.Tensor]

#: Scores computed from the logits of a linear classifier.
LOGIT_SCORES = ('msp', 'mls', 'energy')
#: Scores that search the kNN bank.
KNN_SCORES = ('class_knn', 'knn')
#: Scores of a Gaussian model fitted to the bank.
GAUSSIAN_SCORES = ('mahalanobis', )
#: Scores that need the training bank (``OSRBankHook``).
BANK_SCORES = KNN_SCORES + GAUSSIAN_SCORES
#: Every score ``OSRMetric`` knows, in report order.
OSR_SCORES = BANK_SCORES + LOGIT_SCORES
#: Keys returned by :func:`compute_osr_metrics` without predictions.
RANKING_METRICS = ('auroc', 'aupr_in', 'aupr_out', 'fpr95_known_pos',
                   'fpr95_ood_pos')
#: Keys added by :func:`compute_osr_metrics` when predictions are given.
CLASSIFICATION_METRICS = ('accuracy', 'oscr', 'oscr_arpl')
#: Keys of :func:`openood_metrics` (``openood_acc`` needs predictions).
OPENOOD_METRICS = ('openood_fpr95', 'openood_auroc', 'openood_aupr_in',
                   'openood_aupr_out', 'openood_acc')
#: Largest condition number of the tied covariance that
#: :func:`fit_tied_gaussian` accepts without shrinkage (``'auto'``).
MAHALANOBIS_MAX_CONDITION = 1e10

#: Bank rows per BLAS block of faiss's exact CPU search (faiss's default,
#: 1024, makes the class-wise search about 25% slower at CIFAR scale).
FAISS_DATABASE_BLOCK = 8192
#: faiss searches query blocks with ``rows * D`` below this without BLAS
#: (faiss 1.15's default, 128000, i.e. up to 999 rows at D = 128, is 5x
#: slower per query for those rows, e.g. the last query chunk).
FAISS_BLAS_THRESHOLD = 20
#: Bank rows normalised, converted to float32 and searched at once (32 MiB
#: of float32 at 128 dimensions).
BANK_BLOCK_ROWS = 65536
#: Storage types of the normalised kNN bank (``bank_dtype``).
BANK_DTYPES = ('float32', 'float16')
#: Indexes of :func:`knn_scores`: exact brute force, or inverted lists.
KNN_INDEXES = ('flat', 'ivf')
#: Training vectors per inverted list of the IVF coarse quantizer (faiss
#: warns below 39).
IVF_TRAIN_PER_LIST = 64

_gpu_resources = None


def _to_numpy(x: ArrayLike, name: str) -> np.ndarray:
    """Return ``x`` as a NumPy array (tensors are detached, moved to CPU)."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    if x is None:
        raise ValueError(f'{name} must be an array, got None')
    return np.asarray(x)


def l2_normalize(x: ArrayLike, eps: float = 1e-12) -> np.ndarray:
    """L2-normalise the rows of ``x`` as ``x / max(||x||, eps)``.

    A zero row stays zero instead of becoming NaN.

    Args:
        x (np.ndarray | torch.Tensor): Vectors of shape ``(N, D)``.
        eps (float): Lower bound of the norm. Defaults to 1e-12.

    Returns:
        np.ndarray: C-contiguous float32 array of shape ``(N, D)``.
    """
    x = _to_numpy(x, 'x').astype(np.float32, copy=False)
    if x.ndim != 2:
        raise ValueError(f'expected vectors of shape (N, D), got {x.shape}')
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.maximum(norms, eps))


def faiss_gpu_available() -> bool:
    """Whether the installed faiss has GPU support and sees a GPU."""
    return (hasattr(faiss, 'StandardGpuResources')
            and faiss.get_num_gpus() > 0)


def _check_vectors(x: np.ndarray, name: str) -> None:
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(
            f'{name} must be a non-empty array of shape (N, D), got shape '
            f'{x.shape}')
    # Row blocks keep the boolean mask small for large banks.
    num_bad = sum(
        int((~np.isfinite(x[start:start + BANK_BLOCK_ROWS]).all(axis=1)).sum())
        for start in range(0, x.shape[0], BANK_BLOCK_ROWS))
    if num_bad:
        raise ValueError(f'{name} has {num_bad} rows with NaN or inf values')


def _gpu_resources_for(use_gpu: Optional[bool]
                       ) -> Optional['faiss.StandardGpuResources']:
    """faiss GPU resources to search with, or None to search on the CPU."""
    if use_gpu is None:
        use_gpu = faiss_gpu_available()
    elif use_gpu and not faiss_gpu_available():
        raise RuntimeError(
            'use_gpu=True but the installed faiss has no GPU support or no '
            'GPU is visible; install faiss-gpu or pass use_gpu=None')
    if not use_gpu:
        return None
    global _gpu_resources
    if _gpu_resources is None:
        _gpu_resources = faiss.StandardGpuResources()
    return _gpu_resources


def check_knn_options(bank_dtype: str = 'float32',
                      index: str = 'flat',
                      nlist: int = 1024,
                      nprobe: int = 32) -> None:
    """Check the storage and index options of the kNN scores.

    Args:
        bank_dtype (str): One of :data:`BANK_DTYPES`.
        index (str): One of :data:`KNN_INDEXES`.
        nlist (int): Inverted lists of ``index='ivf'``, ``>= 1``.
        nprobe (int): Lists searched per query, in ``[1, nlist]``.
    """
    if bank_dtype not in BANK_DTYPES:
        raise ValueError(
            f'bank_dtype must be one of {BANK_DTYPES}, got {bank_dtype!r}')
    if index not in KNN_INDEXES:
        raise ValueError(f'index must be one of {KNN_INDEXES}, got {index!r}')
    if not isinstance(nlist, (int, np.integer)) or nlist < 1:
        raise ValueError(f'nlist must be a positive integer, got {nlist!r}')
    if not isinstance(nprobe, (int, np.integer)) or not 1 <= nprobe <= nlist:
        raise ValueError(
            f'nprobe must be an integer in [1, nlist={nlist}], got '
            f'{nprobe!r}')


def _stored_bank(bank: np.ndarray,
                 bank_dtype: str,
                 eps: float,
                 order: Optional[np.ndarray] = None) -> np.ndarray:
    """The L2-normalised bank rows (in ``order``) stored as ``bank_dtype``.

    Built block by block: the peak memory is the result plus one float32
    block of :data:`BANK_BLOCK_ROWS` rows.
    """
    rows = np.arange(bank.shape[0]) if order is None else order
    stored = np.empty((rows.size, bank.shape[1]), bank_dtype)
    for start in range(0, rows.size, BANK_BLOCK_ROWS):
        block = rows[start:start + BANK_BLOCK_ROWS]
        stored[start:start + block.size] = l2_normalize(bank[block], eps)
    return stored


def _search_exact(query: np.ndarray, stored: np.ndarray, k: int,
                  gpu_resources: Optional['faiss.StandardGpuResources']
                  ) -> np.ndarray:
    """Top-``k`` inner products of normalised float32 ``query`` rows with
    the ``stored`` bank, in descending order, shape ``(N, k)``.

    The bank is searched in blocks of :data:`BANK_BLOCK_ROWS` rows converted
    to float32 with faiss's brute-force ``knn`` (``knn_gpu`` on the GPU);
    a ``faiss.ResultHeap`` merges the blocks' results.
    """
    heap = faiss.ResultHeap(query.shape[0], k, keep_max=True)
    for start in range(0, stored.shape[0], BANK_BLOCK_ROWS):
        block = stored[start:start + BANK_BLOCK_ROWS].astype(
            np.float32, copy=False)
        block_k = min(k, block.shape[0])
        if gpu_resources is None:
            similarities, ids = faiss.knn(query, block, block_k,
                                          faiss.METRIC_INNER_PRODUCT)
        else:
            similarities, ids = faiss.knn_gpu(
                gpu_resources,
                query,
                block,
                block_k,
                metric=faiss.METRIC_INNER_PRODUCT)
        heap.add_result(similarities, ids + start)
    heap.finalize()
    return heap.D


def _ivf_index(bank: np.ndarray, bank_dtype: str, nlist: int, nprobe: int,
               eps: float,
               gpu_resources: Optional['faiss.StandardGpuResources']
               ) -> faiss.Index:
    """An IVF inner-product index over the L2-normalised ``bank``.

    The lists hold float32 vectors (``IVF{nlist},Flat``) or float16 ones
    (``IVF{nlist},SQfp16``). The coarse quantizer is trained on
    :data:`IVF_TRAIN_PER_LIST` vectors per list drawn with a fixed seed,
    and the bank is added block by block.
    """
    if nlist > bank.shape[0]:
        raise ValueError(
            f'nlist={nlist} is larger than the bank ({bank.shape[0]} '
            'vectors)')
    encoding = 'Flat' if bank_dtype == 'float32' else 'SQfp16'
    index = faiss.index_factory(bank.shape[1], f'IVF{nlist},{encoding}',
                                faiss.METRIC_INNER_PRODUCT)
    train_rows = np.sort(
        np.random.default_rng(0).choice(
            bank.shape[0],
            min(bank.shape[0], IVF_TRAIN_PER_LIST * nlist),
            replace=False))
    index.train(l2_normalize(bank[train_rows], eps))
    for start in range(0, bank.shape[0], BANK_BLOCK_ROWS):
        index.add(l2_normalize(bank[start:start + BANK_BLOCK_ROWS], eps))
    faiss.extract_index_ivf(index).nprobe = nprobe
    if gpu_resources is not None:
        device = (torch.cuda.current_device()
                  if torch.cuda.is_available() else 0)
        index = faiss.index_cpu_to_gpu(gpu_resources, device, index)
    return index


def _search_ivf(query: np.ndarray, index: faiss.Index, k: int,
                nprobe: int) -> np.ndarray:
    """Top-``k`` inner products from an IVF index, shape ``(N, k)``."""
    similarities, ids = index.search(query, k)
    missing = int((ids[:, k - 1] < 0).sum())
    if missing:
        raise ValueError(
            f"index='ivf': {missing} queries have fewer than k={k} bank "
            f'vectors in their nprobe={nprobe} nearest lists; raise nprobe '
            'or lower nlist')
    return similarities


@contextmanager
def _faiss_blas_search(size: int = FAISS_DATABASE_BLOCK) -> Iterator:
    """Temporarily search at least ``size`` bank rows per BLAS block, and
    use BLAS down to :data:`FAISS_BLAS_THRESHOLD`.

    faiss's scratch memory per block is ``4 * query_block * size`` bytes
    (128 MiB with faiss's 4096-query blocks).
    """
    previous = (faiss.cvar.distance_compute_blas_database_bs,
                faiss.cvar.distance_compute_blas_threshold)
    faiss.cvar.distance_compute_blas_database_bs = max(previous[0], size)
    faiss.cvar.distance_compute_blas_threshold = min(previous[1],
                                                     FAISS_BLAS_THRESHOLD)
    try:
        yield
    finally:
        (faiss.cvar.distance_compute_blas_database_bs,
         faiss.cvar.distance_compute_blas_threshold) = previous


def _normalized_chunks(query: np.ndarray, chunk_size: int,
                       eps: float) -> Iterator[Tuple[slice, np.ndarray]]:
    """Yield ``(rows, normalised float32 query rows)`` chunk by chunk."""
    if chunk_size < 1:
        raise ValueError(f'chunk_size must be >= 1, got {chunk_size}')
    for start in range(0, query.shape[0], chunk_size):
        rows = slice(start, start + chunk_size)
        yield rows, l2_normalize(query[rows], eps)


def _prepare_search(query: ArrayLike, bank: ArrayLike, k: int,
                    **knn_options) -> Tuple[np.ndarray, np.ndarray]:
    check_knn_options(**knn_options)
    query = _to_numpy(query, 'query')
    bank = _to_numpy(bank, 'bank')
    _check_vectors(query, 'query')
    _check_vectors(bank, 'bank')
    if query.shape[1] != bank.shape[1]:
        raise ValueError(
            f'query dimension {query.shape[1]} != bank dimension '
            f'{bank.shape[1]}')
    if not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f'k must be a positive integer, got {k!r}')
    return query, bank


def knn_scores(query: ArrayLike,
               bank: ArrayLike,
               k: int = 50,
               chunk_size: int = 4096,
               use_gpu: Optional[bool] = None,
               eps: float = 1e-12,
               bank_dtype: str = 'float32',
               index: str = 'flat',
               nlist: int = 1024,
               nprobe: int = 32) -> np.ndarray:
    """Deep nearest-neighbour score of Sun et al. 2022.

    `Out-of-Distribution Detection with Deep Nearest Neighbors
    <https://arxiv.org/abs/2204.06507>`_.

    Note:
        With both sides L2-normalised, the score is minus the squared
        Euclidean distance to the ``k``-th nearest bank vector:
        :math:`-\\|q - b_{(k)}\\|^2 = -(2 - 2 \\cos_{(k)})`, where
        :math:`\\cos_{(k)}` is the ``k``-th largest cosine similarity.
        It lies in ``[-4, 0]``; higher means more known.

        ``index='flat'`` is exact (up to the float16 rounding of the
        normalised bank with ``bank_dtype='float16'``). ``index='ivf'``
        searches the ``nprobe`` nearest of ``nlist`` inverted lists of a
        faiss IVF index (k-means coarse quantizer), an approximation whose
        recall grows with ``nprobe``; ``nprobe = nlist`` is exact. Memory:
        one normalised copy of the bank in ``bank_dtype`` (``'flat'``) or
        in the IVF lists, plus one block of :data:`BANK_BLOCK_ROWS` float32
        rows and one query chunk.

    Args:
        query (np.ndarray | torch.Tensor): Test vectors ``(N, D)``.
        bank (np.ndarray | torch.Tensor): Training vectors ``(M, D)``.
        k (int): Which neighbour. Must be ``<= M``. Defaults to 50.
        chunk_size (int): Queries searched at once. Defaults to 4096.
        use_gpu (bool, optional): Search on the GPU. ``None`` picks the GPU
            when available. Defaults to None.
        eps (float): Norm lower bound of :func:`l2_normalize`.
            Defaults to 1e-12.
        bank_dtype (str): Storage of the normalised bank, ``'float32'`` or
            ``'float16'`` (half the memory). Defaults to ``'float32'``.
        index (str): ``'flat'`` (exact) or ``'ivf'`` (approximate).
            Defaults to ``'flat'``.
        nlist (int): Inverted lists of ``index='ivf'``. Defaults to 1024.
        nprobe (int): Lists searched per query with ``index='ivf'``, in
            ``[1, nlist]``. Defaults to 32.

    Returns:
        np.ndarray: float64 scores of shape ``(N, )``.
    """
    query, bank = _prepare_search(
        query, bank, k, bank_dtype=bank_dtype, index=index, nlist=nlist,
        nprobe=nprobe)
    if k > bank.shape[0]:
        raise ValueError(
            f'k={k} is larger than the bank ({bank.shape[0]} vectors)')
    gpu_resources = _gpu_resources_for(use_gpu)
    if index == 'ivf':
        search = partial(
            _search_ivf,
            index=_ivf_index(bank, bank_dtype, nlist, nprobe, eps,
                             gpu_resources),
            k=k,
            nprobe=nprobe)
    else:
        search = partial(
            _search_exact,
            stored=_stored_bank(bank, bank_dtype, eps),
            k=k,
            gpu_resources=gpu_resources)
    scores = np.empty(query.shape[0], dtype=np.float64)
    with _faiss_blas_search():
        for rows, chunk in _normalized_chunks(query, chunk_size, eps):
            scores[rows] = search(chunk)[:, k - 1]
    return -(2.0 - 2.0 * scores)


def class_knn_scores(query: ArrayLike,
                     bank: ArrayLike,
                     bank_labels: ArrayLike,
                     num_classes: int,
                     k: int = 3,
                     chunk_size: int = 4096,
                     use_gpu: Optional[bool] = None,
                     eps: float = 1e-12,
                     bank_dtype: str = 'float32'
                     ) -> Tuple[np.ndarray, np.ndarray]:
    """Class-wise kNN score of GradMix (arXiv 2505.12803).

    Note:
        For each known class :math:`c`, :math:`s_c` is the sum of the top-k
        cosine similarities between the query and the bank vectors of class
        :math:`c`. A cosine similarity can be negative, so the sums are
        clipped at zero before normalising:

        .. math::

            p_c = \\frac{\\max(s_c, 0)}{\\sum_{c'} \\max(s_{c'}, 0)},

        which equals the authors' :math:`s_c / \\sum_{c'} s_{c'}` whenever
        every :math:`s_c > 0`, and keeps :math:`p` a distribution otherwise.
        If no class has a positive sum, :math:`p` is uniform (score
        :math:`1 / C`, the lowest possible). The score is
        :math:`\\max_c p_c`; the prediction is :math:`\\arg\\max_c s_c`
        (ties: lowest class index).

        The normalised bank is stored once, sorted by class, in
        ``bank_dtype``; every query chunk searches each class's rows with
        faiss's exact brute-force kNN, so the cost is one pass over the
        bank per query chunk, and no index is built per class. Memory: the
        stored bank, one query chunk and its ``(chunk_size, C)`` sums.

    Args:
        query (np.ndarray | torch.Tensor): Test vectors ``(N, D)``.
        bank (np.ndarray | torch.Tensor): Training vectors ``(M, D)``.
        bank_labels (np.ndarray | torch.Tensor): Classes of the bank
            vectors, integers in ``[0, num_classes)``, shape ``(M, )``.
        num_classes (int): Number of known classes ``C``. Every class needs
            at least ``k`` bank vectors.
        k (int): Neighbours per class. Defaults to 3.
        chunk_size (int): Queries searched at once. Defaults to 4096.
        use_gpu (bool, optional): Search on the GPU. ``None`` picks the GPU
            when available. Defaults to None.
        eps (float): Norm lower bound of :func:`l2_normalize`.
            Defaults to 1e-12.
        bank_dtype (str): Storage of the normalised bank, ``'float32'`` or
            ``'float16'`` (half the memory, similarities exact up to the
            float16 rounding of the bank). Defaults to ``'float32'``.

    Returns:
        tuple[np.ndarray, np.ndarray]: float64 scores ``max_c p_c`` and
        int64 predictions, both of shape ``(N, )``.
    """
    query, bank = _prepare_search(query, bank, k, bank_dtype=bank_dtype)
    bank_labels = _to_numpy(bank_labels, 'bank_labels')
    if bank_labels.shape != (bank.shape[0], ):
        raise ValueError(
            f'bank_labels must have shape ({bank.shape[0]}, ), got '
            f'{bank_labels.shape}')
    if num_classes < 1:
        raise ValueError(f'num_classes must be >= 1, got {num_classes}')
    bad = np.unique(bank_labels[(bank_labels < 0)
                                | (bank_labels >= num_classes)])
    if bad.size:
        raise ValueError(
            f'bank_labels must lie in [0, {num_classes}), found {bad[:10]}')
    counts = np.bincount(bank_labels.astype(np.int64), minlength=num_classes)
    small = np.flatnonzero(counts < k)
    if small.size:
        raise ValueError(
            f'class_knn needs at least k={k} bank vectors per class; classes '
            f'{small.tolist()} have {counts[small].tolist()} (OSRMetric '
            'also uses class_knn for the predictions of models without '
            'logits): enlarge the bank (OSRBankHook max_samples) or lower '
            'class_knn_k')

    bounds = np.concatenate(([0], np.cumsum(counts)))
    stored = _stored_bank(bank, bank_dtype, eps,
                          np.argsort(bank_labels, kind='stable'))
    gpu_resources = _gpu_resources_for(use_gpu)
    scores = np.empty(query.shape[0], np.float64)
    preds = np.empty(query.shape[0], np.int64)
    # faiss allocates query block x database block floats per search; with
    # blocks larger than the classes, e.g. 4096 x 8192 (128 MiB, above
    # glibc's 32 MiB mmap threshold) for classes of 1,280 vectors, every
    # search maps and faults in fresh pages, which made the 1,000 searches
    # per chunk 1.7x slower than one search of the whole bank.
    with _faiss_blas_search(min(FAISS_DATABASE_BLOCK, int(counts.max()))):
        for rows, chunk in _normalized_chunks(query, chunk_size, eps):
            similarity_sums = np.empty((chunk.shape[0], num_classes))
            for c in range(num_classes):
                similarity_sums[:, c] = _search_exact(
                    chunk, stored[bounds[c]:bounds[c + 1]], k,
                    gpu_resources).sum(axis=1, dtype=np.float64)
            positive = np.maximum(similarity_sums, 0.0)
            totals = positive.sum(axis=1, keepdims=True)
            probs = np.divide(
                positive,
                totals,
                out=np.full_like(positive, 1.0 / num_classes),
                where=totals > 0)
            scores[rows] = probs.max(axis=1)
            preds[rows] = similarity_sums.argmax(axis=1)
    return scores, preds


def logit_scores(logits: ArrayLike,
                 method: str,
                 temperature: float = 1.0) -> np.ndarray:
    """Scores from classifier logits.

    - ``msp``: maximum softmax probability (Hendrycks & Gimpel 2017);
    - ``mls``: maximum logit (Vaze et al. 2022);
    - ``energy``: negative free energy
      :math:`T \\log \\sum_c \\exp(l_c / T)` (Liu et al. 2020).

    Args:
        logits (np.ndarray | torch.Tensor): Logits ``(N, C)``.
        method (str): ``'msp'``, ``'mls'`` or ``'energy'``.
        temperature (float): Energy temperature ``T``. Defaults to 1.0.

    Returns:
        np.ndarray: float64 scores of shape ``(N, )``.
    """
    logits = _to_numpy(logits, 'logits').astype(np.float64)
    if logits.ndim != 2 or logits.shape[1] == 0:
        raise ValueError(f'logits must have shape (N, C), got {logits.shape}')
    if method == 'msp':
        shifted = logits - logits.max(axis=1, keepdims=True)
        return 1.0 / np.exp(shifted).sum(axis=1)
    if method == 'mls':
        return logits.max(axis=1)
    if method == 'energy':
        return temperature * logsumexp(logits / temperature, axis=1)
    raise ValueError(f'method must be one of {LOGIT_SCORES}, got {method!r}')


def _check_scores(scores: ArrayLike,
                  is_known: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
    scores = _to_numpy(scores, 'scores')
    is_known = _to_numpy(is_known, 'is_known')
    if scores.ndim != 1 or is_known.ndim != 1:
        raise ValueError(
            'scores and is_known must be 1-D, got shapes '
            f'{scores.shape} and {is_known.shape}')
    if scores.shape != is_known.shape:
        raise ValueError(
            f'scores has {scores.shape[0]} entries but is_known has '
            f'{is_known.shape[0]}')
    if scores.size == 0:
        raise ValueError('scores is empty')
    scores = scores.astype(np.float64)
    num_bad = int((~np.isfinite(scores)).sum())
    if num_bad:
        raise ValueError(f'scores contain {num_bad} NaN or inf values')
    if is_known.dtype != np.bool_:
        if not np.isin(is_known, (0, 1)).all():
            raise ValueError(
                'is_known must be boolean or 0/1, found values '
                f'{np.unique(is_known)[:10]}')
        is_known = is_known.astype(bool)
    return scores, is_known


def _check_mask(mask: ArrayLike, size: int, name: str) -> np.ndarray:
    mask = _to_numpy(mask, name).reshape(-1)
    if mask.shape != (size, ):
        raise ValueError(
            f'{name} has {mask.shape[0]} entries, expected {size}')
    return mask.astype(bool)


def _correct_known(is_known: np.ndarray, preds: ArrayLike,
                   labels: ArrayLike) -> np.ndarray:
    """Boolean mask of known samples whose prediction is right."""
    preds = _to_numpy(preds, 'preds').reshape(-1)
    labels = _to_numpy(labels, 'labels').reshape(-1)
    if preds.shape != is_known.shape or labels.shape != is_known.shape:
        raise ValueError(
            f'preds ({preds.shape[0]}) and labels ({labels.shape[0]}) must '
            f'have one entry per score ({is_known.shape[0]})')
    negative = int((labels[is_known] < 0).sum())
    if negative:
        raise ValueError(
            f'{negative} known samples have a negative label; unknown '
            'samples must be marked in is_known')
    return is_known & (preds == labels)


def _threshold_counts(scores: np.ndarray, is_known: np.ndarray,
                      correct: np.ndarray) -> Dict[str, np.ndarray]:
    """Counts of accepted samples at every unique score, high to low.

    A sample is accepted at threshold ``t`` when ``score >= t``. Entry
    ``i`` refers to the ``i``-th largest unique score; O(n log n).
    """
    order = np.argsort(scores, kind='stable')[::-1]
    sorted_scores = scores[order]
    group_ends = np.append(
        np.flatnonzero(sorted_scores[:-1] != sorted_scores[1:]),
        scores.size - 1)
    return dict(
        thresholds=sorted_scores[group_ends],
        known=np.cumsum(is_known[order])[group_ends],
        correct=np.cumsum(correct[order])[group_ends],
        unknown=np.cumsum(~is_known[order])[group_ends])


def oscr_curve(scores: ArrayLike, is_known: ArrayLike, correct: ArrayLike
               ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Open-set classification rate curve (Dhamija et al. 2018).

    Note:
        For every unique score ``t`` (high to low),
        ``CCR(t)`` is the fraction of known samples that are correctly
        classified and have ``score >= t``, and ``FPR(t)`` is the fraction
        of unknown samples with ``score >= t``. The curve starts at
        ``(0, 0)`` (threshold ``+inf``) and ends at ``(1, accuracy)``
        (the smallest score).

    Args:
        scores (np.ndarray | torch.Tensor): Scores ``(N, )``.
        is_known (np.ndarray | torch.Tensor): Known mask ``(N, )``.
        correct (np.ndarray | torch.Tensor): Whether each sample is a
            correctly classified known sample ``(N, )``.

    Returns:
        tuple[np.ndarray]: ``fpr``, ``ccr`` and ``thresholds`` (the first
        threshold is ``+inf``).
    """
    scores, is_known = _check_scores(scores, is_known)
    correct = _check_mask(correct, scores.size, 'correct') & is_known
    num_known, num_unknown = is_known.sum(), (~is_known).sum()
    if num_known == 0 or num_unknown == 0:
        raise ValueError(
            f'the OSCR curve needs known and unknown samples, got '
            f'{num_known} known and {num_unknown} unknown')
    counts = _threshold_counts(scores, is_known, correct)
    fpr = np.concatenate(([0.0], counts['unknown'] / num_unknown))
    ccr = np.concatenate(([0.0], counts['correct'] / num_known))
    thresholds = np.concatenate(([np.inf], counts['thresholds']))
    return fpr, ccr, thresholds


def oscr(scores: ArrayLike, is_known: ArrayLike, correct: ArrayLike) -> float:
    """Area under :func:`oscr_curve` by the trapezoidal rule.

    Ties are one point of the curve, so a tie between an unknown and a
    correctly classified known sample counts one half, as in AUROC. When
    every known sample is correct, OSCR equals AUROC; in general it is at
    most the closed-set accuracy.

    Args:
        scores (np.ndarray | torch.Tensor): Scores ``(N, )``.
        is_known (np.ndarray | torch.Tensor): Known mask ``(N, )``.
        correct (np.ndarray | torch.Tensor): Correctly classified known
            samples ``(N, )``.

    Returns:
        float: OSCR in ``[0, 1]``.
    """
    fpr, ccr, _ = oscr_curve(scores, is_known, correct)
    return float(np.trapezoid(ccr, fpr))


def oscr_arpl(scores: ArrayLike, is_known: ArrayLike,
              correct: ArrayLike) -> float:
    """OSCR as computed by the ``compute_oscr`` loop of ARPL / Vaze et al.

    Reproduces, vectorised, the value of ``compute_oscr`` in
    `ARPL <https://github.com/iCGY96/ARPL>`_ and
    `osr_closed_set_all_you_need
    <https://github.com/sgvaze/osr_closed_set_all_you_need>`_ with
    ``x1 = scores[is_known]`` and ``x2 = scores[~is_known]`` (input order
    kept). That loop sorts all scores ascending with ``np.argsort`` and, for
    cut ``i``, counts correct known samples strictly after position ``i``
    but unknown samples from position ``i`` on. Tied scores are therefore
    split by their position in the sort, which makes the value depend on
    the input order; prefer :func:`oscr`, which treats ties consistently.

    Args:
        scores (np.ndarray | torch.Tensor): Scores ``(N, )``.
        is_known (np.ndarray | torch.Tensor): Known mask ``(N, )``.
        correct (np.ndarray | torch.Tensor): Correctly classified known
            samples ``(N, )``.

    Returns:
        float: the ARPL OSCR value in ``[0, 1]``.
    """
    scores, is_known = _check_scores(scores, is_known)
    correct = _check_mask(correct, scores.size, 'correct')
    num_known, num_unknown = is_known.sum(), (~is_known).sum()
    if num_known == 0 or num_unknown == 0:
        raise ValueError(
            f'oscr_arpl needs known and unknown samples, got {num_known} '
            f'known and {num_unknown} unknown')
    predict = np.concatenate((scores[is_known], scores[~is_known]))
    known_target = np.concatenate(
        (correct[is_known].astype(np.float64), np.zeros(num_unknown)))
    unknown_target = np.concatenate((np.zeros(num_known),
                                     np.ones(num_unknown)))
    order = predict.argsort()
    n = predict.size
    # suffix[i] = sum of the sorted targets from position i on.
    known_suffix = np.cumsum(known_target[order][::-1])[::-1]
    unknown_suffix = np.cumsum(unknown_target[order][::-1])[::-1]

    ccr = np.zeros(n + 2)
    fpr = np.zeros(n + 2)
    ccr[:n - 1] = known_suffix[1:] / num_known
    fpr[:n - 1] = unknown_suffix[:n - 1] / num_unknown
    ccr[n + 1] = fpr[n + 1] = 1.0
    # Points sorted by (FPR, CCR) descending, as the loop's sorted(...).
    points = np.lexsort((ccr, fpr))[::-1]
    fpr, ccr = fpr[points], ccr[points]
    return float(np.sum((fpr[:-1] - fpr[1:]) * (ccr[:-1] + ccr[1:]) / 2.0))


def fpr_at_95_tpr(scores: ArrayLike, is_known: ArrayLike) -> float:
    """False-positive rate on unknowns at 95% true-positive rate on knowns.

    Note:
        Known samples are the positives. Among the thresholds ``t`` (the
        unique scores, a sample is accepted when ``score >= t``) that accept
        at least 95% of the known samples (``100 * accepted_known >= 95 *
        num_known``, in integers), take the largest; the result is the
        fraction of unknown samples accepted there. This is the smallest
        FPR reaching TPR >= 95%, and equals ``fpr[argmax(tpr >= 0.95)]`` of
        ``sklearn.metrics.roc_curve(is_known, scores,
        drop_intermediate=False)`` up to float rounding of ``tpr``.
        Tied samples are accepted or rejected together. With the roles
        swapped, ``fpr_at_95_tpr(-scores, ~is_known)`` is the OOD-positive
        convention ``fpr95_ood_pos``: the fraction of known samples flagged
        unknown when 95% of the unknowns are.

    Args:
        scores (np.ndarray | torch.Tensor): Scores ``(N, )``.
        is_known (np.ndarray | torch.Tensor): Known mask ``(N, )``.

    Returns:
        float: FPR in ``[0, 1]``; lower is better.
    """
    scores, is_known = _check_scores(scores, is_known)
    num_known, num_unknown = is_known.sum(), (~is_known).sum()
    if num_known == 0 or num_unknown == 0:
        raise ValueError(
            f'FPR@95 needs known and unknown samples, got {num_known} known '
            f'and {num_unknown} unknown')
    counts = _threshold_counts(scores, is_known, is_known)
    first = np.argmax(100 * counts['known'] >= 95 * num_known)
    return float(counts['unknown'][first] / num_unknown)


def openood_metrics(scores: ArrayLike,
                    is_known: ArrayLike,
                    preds: Optional[ArrayLike] = None,
                    labels: Optional[ArrayLike] = None) -> Dict[str, float]:
    """FPR@95, AUROC, AUPR-In, AUPR-Out and ACC as OpenOOD v1.5 defines them.

    `OpenOOD <https://github.com/Jingkang50/OpenOOD>`_ v1.5
    (``openood/evaluators/metrics.py``, ``auc_and_fpr_recall`` and ``acc``)
    treats OOD (unknown) samples as the positives and ranks them by the
    negated score. Reproduced here with the same scikit-learn calls:

    - ``openood_fpr95``: ``roc_curve(is_unknown, -scores)`` with its default
      ``drop_intermediate=True``, then the FPR at the first ROC point whose
      TPR is ``>= 0.95``, i.e. the fraction of known samples flagged
      unknown when 95% of the unknowns are. On continuous scores this equals
      ``fpr95_ood_pos``; with ties, ``drop_intermediate`` can drop the
      collinear points of tied groups so that the first point reaching 95%
      lies further along the curve, and the value can be higher.
    - ``openood_auroc``: ``auc(fpr, tpr)`` of that curve (trapezoids), equal
      to ``auroc`` up to float rounding.
    - ``openood_aupr_in``: ``auc(recall, precision)`` of
      ``precision_recall_curve(is_known, scores)``: the trapezoidal area
      under the PR curve (whose last point is recall 0, precision 1), not
      average precision.
    - ``openood_aupr_out``: the same with ``(is_unknown, -scores)``.
    - ``openood_acc`` (needs ``preds`` and ``labels``): accuracy on the
      known samples, the same as ``accuracy``.

    Args:
        scores (np.ndarray | torch.Tensor): Scores ``(N, )``, higher = more
            known (OpenOOD's ``conf``).
        is_known (np.ndarray | torch.Tensor): Known mask ``(N, )``; OpenOOD's
            ``label == -1`` is ``~is_known``.
        preds (np.ndarray | torch.Tensor, optional): Closed-set predictions
            ``(N, )``. Defaults to None.
        labels (np.ndarray | torch.Tensor, optional): Ground-truth classes
            ``(N, )``. Defaults to None.

    Returns:
        dict[str, float]: The values as fractions (OpenOOD's tables show
        them x 100).
    """
    scores, is_known = _check_scores(scores, is_known)
    if (preds is None) != (labels is None):
        raise ValueError('pass both preds and labels, or neither')
    num_known = int(is_known.sum())
    if num_known == 0 or num_known == is_known.size:
        raise ValueError(
            f'OpenOOD metrics need known and unknown samples, got '
            f'{num_known} known and {is_known.size - num_known} unknown')
    is_unknown = (~is_known).astype(np.int64)
    fpr, tpr, _ = roc_curve(is_unknown, -scores)
    precision_in, recall_in, _ = precision_recall_curve(
        is_known.astype(np.int64), scores)
    precision_out, recall_out, _ = precision_recall_curve(is_unknown, -scores)
    metrics = dict(
        openood_fpr95=float(fpr[np.argmax(tpr >= 0.95)]),
        openood_auroc=float(auc(fpr, tpr)),
        openood_aupr_in=float(auc(recall_in, precision_in)),
        openood_aupr_out=float(auc(recall_out, precision_out)))
    if preds is not None:
        correct = _correct_known(is_known, preds, labels)
        metrics['openood_acc'] = float(correct.sum() / num_known)
    return metrics


def compute_osr_metrics(scores: ArrayLike,
                        is_known: ArrayLike,
                        preds: Optional[ArrayLike] = None,
                        labels: Optional[ArrayLike] = None,
                        openood_compat: bool = False) -> Dict[str, float]:
    """All open-set metrics of one score, as fractions in ``[0, 1]``.

    Keys:

    - ``auroc``: area under the ROC curve, known = positive,
      ``sklearn.metrics.roc_auc_score`` (ties count one half).
    - ``aupr_in``: average precision with known samples positive
      (``sklearn.metrics.average_precision_score(is_known, scores)``).
    - ``aupr_out``: average precision with unknown samples positive and the
      negated score (``average_precision_score(~is_known, -scores)``).
    - ``fpr95_known_pos``: FPR of the unknowns at 95% TPR of the knowns
      (ODIN / ARPL convention), see :func:`fpr_at_95_tpr`.
    - ``fpr95_ood_pos``: the fraction of known samples flagged unknown at
      95% TPR of the unknowns (OpenOOD v1.5 convention, unknown =
      positive), ``fpr_at_95_tpr(-scores, ~is_known)``.
    - ``accuracy`` (needs ``preds`` and ``labels``): closed-set accuracy on
      the known samples.
    - ``oscr`` (needs ``preds`` and ``labels``): see :func:`oscr`.
    - ``oscr_arpl`` (needs ``preds`` and ``labels``): see
      :func:`oscr_arpl`.
    - with ``openood_compat=True``, also the keys of
      :func:`openood_metrics` (``openood_fpr95``, ``openood_auroc``,
      ``openood_aupr_in``, ``openood_aupr_out`` and, with predictions,
      ``openood_acc``).

    If there are no known or no unknown samples the ranking metrics are
    undefined: they are NaN and a ``UserWarning`` is raised (``accuracy`` and
    ``openood_acc`` are still computed when there are known samples).

    Args:
        scores (np.ndarray | torch.Tensor): Scores ``(N, )``, higher = more
            known. NaN or inf raise ``ValueError``.
        is_known (np.ndarray | torch.Tensor): Boolean (or 0/1) known mask
            ``(N, )``.
        preds (np.ndarray | torch.Tensor, optional): Closed-set predictions
            ``(N, )``. Defaults to None.
        labels (np.ndarray | torch.Tensor, optional): Ground-truth classes
            ``(N, )``; only the known samples' labels are used.
            Defaults to None.
        openood_compat (bool): Also report OpenOOD v1.5's definitions.
            Defaults to False.

    Returns:
        dict[str, float]: The metrics.
    """
    scores, is_known = _check_scores(scores, is_known)
    if (preds is None) != (labels is None):
        raise ValueError('pass both preds and labels, or neither')
    with_predictions = preds is not None
    correct = (
        _correct_known(is_known, preds, labels) if with_predictions else None)

    num_known = int(is_known.sum())
    num_unknown = is_known.size - num_known
    names = RANKING_METRICS + (
        CLASSIFICATION_METRICS if with_predictions else ())
    if openood_compat:
        names += OPENOOD_METRICS if with_predictions else OPENOOD_METRICS[:-1]
    metrics = dict.fromkeys(names, float('nan'))
    if with_predictions and num_known:
        metrics['accuracy'] = float(correct.sum() / num_known)
        if openood_compat:
            metrics['openood_acc'] = metrics['accuracy']
    if num_known == 0 or num_unknown == 0:
        warnings.warn(
            f'open-set metrics need known and unknown samples, got '
            f'{num_known} known and {num_unknown} unknown; AUROC, AUPR, '
            'FPR@95 and OSCR are NaN',
            stacklevel=2)
        return metrics

    metrics['auroc'] = float(roc_auc_score(is_known, scores))
    metrics['aupr_in'] = float(average_precision_score(is_known, scores))
    metrics['aupr_out'] = float(average_precision_score(~is_known, -scores))
    metrics['fpr95_known_pos'] = fpr_at_95_tpr(scores, is_known)
    metrics['fpr95_ood_pos'] = fpr_at_95_tpr(-scores, ~is_known)
    if with_predictions:
        metrics['oscr'] = oscr(scores, is_known, correct)
        metrics['oscr_arpl'] = oscr_arpl(scores, is_known, correct)
    if openood_compat:
        metrics.update(openood_metrics(scores, is_known, preds, labels))
    return metrics


def _bank_classes(bank: np.ndarray, bank_labels: ArrayLike
                  ) -> Tuple[np.ndarray, np.ndarray]:
    """Sorted bank classes and each vector's index into them."""
    bank_labels = _to_numpy(bank_labels, 'bank_labels').reshape(-1)
    if bank_labels.shape != (bank.shape[0], ):
        raise ValueError(
            f'bank_labels must have shape ({bank.shape[0]}, ), got '
            f'{bank_labels.shape}')
    if (not np.issubdtype(bank_labels.dtype, np.integer)
            or (bank_labels < 0).any()):
        raise ValueError(
            'bank_labels must be known classes (integers >= 0), found '
            f'{np.unique(bank_labels)[:10]}')
    return np.unique(bank_labels, return_inverse=True)


def _condition_number(covariance: np.ndarray) -> float:
    """Largest over smallest eigenvalue; inf if it is not positive."""
    eigenvalues = np.linalg.eigvalsh(covariance)
    return (float(eigenvalues[-1] / eigenvalues[0])
            if eigenvalues[0] > 0 else float('inf'))


def fit_tied_gaussian(bank: ArrayLike,
                      bank_labels: ArrayLike,
                      shrinkage: Union[str, float] = 'auto',
                      max_condition: float = MAHALANOBIS_MAX_CONDITION
                      ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Class means and one shared (tied) covariance of a labelled bank.

    Note:
        The covariance is the maximum-likelihood estimate of Lee et al.
        2018, :math:`\Sigma = \frac{1}{M} \sum_i (x_i - \mu_{y_i})
        (x_i - \mu_{y_i})^T` over all ``M`` bank vectors. Features with
        (almost) no variance, e.g. channels that ReLU keeps at zero, or
        fewer vectors than dimensions make it singular, and its inverse
        meaningless. ``shrinkage`` decides:

        - ``'auto'``: :math:`\Sigma` itself if its condition number is at
          most ``max_condition``, else a ``UserWarning`` and the Ledoit-Wolf
          estimate;
        - ``'ledoit_wolf'``: always ``sklearn.covariance.ledoit_wolf`` of
          the class-centred vectors, :math:`(1 - a) \Sigma + a
          \frac{\mathrm{tr} \Sigma}{D} I` with the coefficient ``a``
          that Ledoit and Wolf (2004) derive from the data;
        - a float ``a`` in ``[0, 1]``: that coefficient
          (``sklearn.covariance.shrunk_covariance``; 0 keeps
          :math:`\Sigma`).

        A covariance that is still singular (condition number ``>= 1 /
        eps`` of float64, e.g. ``shrinkage=0`` on rank-deficient features,
        or zero variance) raises ``ValueError``.

    Args:
        bank (np.ndarray | torch.Tensor): Training vectors ``(M, D)``.
        bank_labels (np.ndarray | torch.Tensor): Their classes, integers
            ``>= 0``, shape ``(M, )``.
        shrinkage (str | float): ``'auto'``, ``'ledoit_wolf'`` or a
            coefficient in ``[0, 1]``. Defaults to ``'auto'``.
        max_condition (float): Largest condition number ``'auto'`` accepts
            unshrunk. Defaults to :data:`MAHALANOBIS_MAX_CONDITION` (1e10).

    Returns:
        tuple[np.ndarray]: The sorted classes ``(C, )``, the float64 class
        means ``(C, D)`` and the covariance ``(D, D)``.
    """
    bank = _to_numpy(bank, 'bank').astype(np.float64)
    _check_vectors(bank, 'bank')
    classes, inverse = _bank_classes(bank, bank_labels)
    means = np.zeros((classes.size, bank.shape[1]))
    np.add.at(means, inverse, bank)
    means /= np.bincount(inverse)[:, None]
    centered = bank - means[inverse]
    covariance = centered.T @ centered / bank.shape[0]
    if isinstance(shrinkage, str):
        if shrinkage not in ('auto', 'ledoit_wolf'):
            raise ValueError(
                "shrinkage must be 'auto', 'ledoit_wolf' or a float in "
                f'[0, 1], got {shrinkage!r}')
        condition = _condition_number(covariance)
        if shrinkage == 'ledoit_wolf' or condition > max_condition:
            covariance, coefficient = ledoit_wolf(
                centered, assume_centered=True)
        if shrinkage == 'auto' and condition > max_condition:
            warnings.warn(
                'mahalanobis: the tied covariance of the bank '
                f'({bank.shape[0]} vectors, {bank.shape[1]} dimensions, '
                f'{classes.size} classes) has condition number '
                f'{condition:.3g} > max_condition={max_condition:.3g}; '
                'using the Ledoit-Wolf estimate (shrinkage coefficient '
                f'{coefficient:.3g} towards a multiple of the identity)',
                stacklevel=3)
    elif (isinstance(shrinkage, bool)
          or not isinstance(shrinkage, (float, int, np.floating))
          or not 0 <= shrinkage <= 1):
        raise ValueError(
            "shrinkage must be 'auto', 'ledoit_wolf' or a float in [0, 1], "
            f'got {shrinkage!r}')
    elif shrinkage > 0:
        covariance = shrunk_covariance(covariance, float(shrinkage))
    # Beyond 1 / eps the inverse is rounding noise.
    if not _condition_number(covariance) < 1 / np.finfo(np.float64).eps:
        raise ValueError(
            'mahalanobis: the tied covariance of the bank is singular '
            f'(condition number {_condition_number(covariance):.3g}, trace '
            f'{np.trace(covariance):.3g}, shrinkage={shrinkage!r}); a zero '
            'trace means every bank vector equals its class mean, otherwise '
            "use shrinkage='auto' or 'ledoit_wolf'")
    return classes, means, covariance


def mahalanobis_scores(query: ArrayLike,
                       bank: ArrayLike,
                       bank_labels: ArrayLike,
                       shrinkage: Union[str, float] = 'auto'
                       ) -> Tuple[np.ndarray, np.ndarray]:
    r"""Mahalanobis score with class means and a tied covariance.

    `A Simple Unified Framework for Detecting Out-of-Distribution Samples
    and Adversarial Attacks <https://arxiv.org/abs/1807.03888>`_ (Lee et
    al. 2018), without input preprocessing or layer ensembles.

    Note:
        With the class means :math:`\mu_c` and covariance :math:`\Sigma`
        of :func:`fit_tied_gaussian`, the score is
        :math:`\max_c -(q - \mu_c)^T \Sigma^{-1} (q - \mu_c)`, minus the
        smallest squared Mahalanobis distance (higher = more known), and
        the prediction is the class of that mean. Vectorised: with the
        Cholesky factor :math:`\Sigma = L L^T`, queries and means are
        whitened once (:math:`L^{-1} x`, a triangular solve) and the
        distances are squared Euclidean distances between whitened vectors
        (``scipy.spatial.distance.cdist``), O(N D^2 + N C D).

    Args:
        query (np.ndarray | torch.Tensor): Test vectors ``(N, D)``.
        bank (np.ndarray | torch.Tensor): Training vectors ``(M, D)``.
        bank_labels (np.ndarray | torch.Tensor): Their classes ``(M, )``.
        shrinkage (str | float): Covariance shrinkage, see
            :func:`fit_tied_gaussian`. Defaults to ``'auto'``.

    Returns:
        tuple[np.ndarray, np.ndarray]: float64 scores and int64 predictions
        (bank labels), both of shape ``(N, )``.
    """
    query = _to_numpy(query, 'query').astype(np.float64)
    _check_vectors(query, 'query')
    classes, means, covariance = fit_tied_gaussian(bank, bank_labels,
                                                   shrinkage)
    if query.shape[1] != means.shape[1]:
        raise ValueError(
            f'query dimension {query.shape[1]} != bank dimension '
            f'{means.shape[1]}')
    factor = cholesky(covariance, lower=True)
    distances = cdist(
        solve_triangular(factor, query.T, lower=True).T,
        solve_triangular(factor, means.T, lower=True).T, 'sqeuclidean')
    nearest = distances.argmin(axis=1)
    return (-distances[np.arange(query.shape[0]), nearest],
            classes[nearest].astype(np.int64))
