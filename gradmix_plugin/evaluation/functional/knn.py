"""Exact and approximate kNN search with faiss, and the kNN scores.

kNN searches are exact by default: faiss's brute-force inner-product
search (``faiss.knn``, ``faiss.knn_gpu`` on the GPU) over L2-normalised
vectors, on the GPU when the installed faiss has GPU support and a GPU is
visible, on the CPU otherwise. The normalised bank is kept once, in
float32 or float16 (``bank_dtype``), and searched in blocks of
``BANK_BLOCK_ROWS`` rows converted to float32; queries are searched
in chunks of ``chunk_size`` rows, so that memory stays bounded.
:func:`knn_scores` can also search an approximate IVF index
(``index='ivf'``).
"""
from contextlib import contextmanager
from functools import partial
from typing import Iterator, Optional, Tuple

import faiss
import numpy as np
import torch

from . import _utils
from ._utils import ArrayLike, _check_vectors, _to_numpy, l2_normalize

#: Bank rows per BLAS block of faiss's exact CPU search (faiss's default,
#: 1024, makes the class-wise search about 25% slower at CIFAR scale).
FAISS_DATABASE_BLOCK = 8192
#: faiss searches query blocks with ``rows * D`` below this without BLAS
#: (faiss 1.15's default, 128000, i.e. up to 999 rows at D = 128, is 5x
#: slower per query for those rows, e.g. the last query chunk).
FAISS_BLAS_THRESHOLD = 20
#: Storage types of the normalised kNN bank (``bank_dtype``).
BANK_DTYPES = ('float32', 'float16')
#: Indexes of :func:`knn_scores`: exact brute force, or inverted lists.
KNN_INDEXES = ('flat', 'ivf')
#: Training vectors per inverted list of the IVF coarse quantizer (faiss
#: warns below 39).
IVF_TRAIN_PER_LIST = 64

_gpu_resources = None

def faiss_gpu_available() -> bool:
    """Whether the installed faiss has GPU support and sees a GPU."""
    return (hasattr(faiss, 'StandardGpuResources')
            and faiss.get_num_gpus() > 0)


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
    block of ``BANK_BLOCK_ROWS`` rows.
    """
    rows = np.arange(bank.shape[0]) if order is None else order
    stored = np.empty((rows.size, bank.shape[1]), bank_dtype)
    for start in range(0, rows.size, _utils.BANK_BLOCK_ROWS):
        block = rows[start:start + _utils.BANK_BLOCK_ROWS]
        stored[start:start + block.size] = l2_normalize(bank[block], eps)
    return stored


def _search_exact(query: np.ndarray, stored: np.ndarray, k: int,
                  gpu_resources: Optional['faiss.StandardGpuResources']
                  ) -> np.ndarray:
    """Top-``k`` inner products of normalised float32 ``query`` rows with
    the ``stored`` bank, in descending order, shape ``(N, k)``.

    The bank is searched in blocks of ``BANK_BLOCK_ROWS`` rows converted
    to float32 with faiss's brute-force ``knn`` (``knn_gpu`` on the GPU);
    a ``faiss.ResultHeap`` merges the blocks' results.
    """
    heap = faiss.ResultHeap(query.shape[0], k, keep_max=True)
    for start in range(0, stored.shape[0], _utils.BANK_BLOCK_ROWS):
        block = stored[start:start + _utils.BANK_BLOCK_ROWS].astype(
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
    for start in range(0, bank.shape[0], _utils.BANK_BLOCK_ROWS):
        index.add(
            l2_normalize(bank[start:start + _utils.BANK_BLOCK_ROWS], eps))
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
        in the IVF lists, plus one block of ``BANK_BLOCK_ROWS`` float32
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
