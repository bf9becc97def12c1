"""Time the open-set evaluator: kNN scoring and OSCR.

At CIFAR scale (10k test queries against a 30k training bank, 6 known
classes, 128-d embeddings and 512-d features), on random unit vectors:

- ``class_knn``: :func:`gradmix_plugin.evaluation.class_knn_scores`
  (faiss, one exact index per class) against brute-force baselines that
  compute the full similarity matrix in chunks of 2048 queries and take the
  per-class top-k with ``torch.topk`` or ``np.partition``, and against a
  per-query Python loop in the style of the GradMix authors' scorer
  (one query at a time: similarities to the bank, then a sort per class),
  timed on ``--loop-queries`` queries and extrapolated linearly;
- ``knn``: :func:`gradmix_plugin.evaluation.knn_scores` (k = 50) against a
  raw faiss search of the same size (``IndexFlatIP`` over pre-normalised
  vectors: index build and one search, normalisation untimed) and a
  chunked ``torch.topk`` baseline;
- OSCR at 10k samples with ties: :func:`~gradmix_plugin.evaluation.oscr`
  and :func:`~gradmix_plugin.evaluation.oscr_arpl` against the ARPL-style
  O(n^2) loop.

Repetitions are interleaved (round-robin); medians and IQRs are reported.

Example::

    OMP_NUM_THREADS=2 python benchmarks/benchmark_evaluator.py
"""
import argparse
import os
from functools import partial
from typing import Callable, Dict

import faiss
import numpy as np
import torch
from benchmark_utils import (
    interleaved_timings,
    machine_info,
    markdown_table,
    summarize,
    time_call,
    write_json,
)

from gradmix_plugin.evaluation import (
    class_knn_scores,
    knn_scores,
    l2_normalize,
    oscr,
    oscr_arpl,
)

CPU = torch.device('cpu')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Benchmark kNN scoring and OSCR of the OSR evaluator.')
    parser.add_argument(
        '--queries', type=int, default=10000,
        help='test queries (default: 10000)')
    parser.add_argument(
        '--bank', type=int, default=30000,
        help='training bank size (default: 30000)')
    parser.add_argument(
        '--dims', type=int, nargs='+', default=[128, 512],
        help='vector dimensions (default: 128 512)')
    parser.add_argument(
        '--num-classes', type=int, default=6,
        help='known classes (default: 6)')
    parser.add_argument(
        '--loop-queries', type=int, default=200,
        help='queries timed for the per-query loop (default: 200)')
    parser.add_argument(
        '--oscr-samples', type=int, default=10000,
        help='samples of the OSCR timing (default: 10000)')
    parser.add_argument(
        '--repeats', type=int, default=3,
        help='timed interleaved repetitions (default: 3)')
    parser.add_argument(
        '--warmup', type=int, default=1,
        help='untimed repetitions first (default: 1)')
    parser.add_argument(
        '--seed', type=int, default=0, help='random seed (default: 0)')
    parser.add_argument(
        '--out', default='benchmarks/results/evaluator.json',
        help='JSON output file (default: %(default)s)')
    parser.add_argument(
        '--quick', action='store_true',
        help='smoke-test mode: 1000 queries, bank 3000, 50 loop queries, '
        '2000 OSCR samples, 1 repeat, no warm-up')
    args = parser.parse_args(argv)
    if args.quick:
        args.queries, args.bank, args.loop_queries = 1000, 3000, 50
        args.oscr_samples, args.repeats, args.warmup = 2000, 1, 0
    return args


def torch_class_knn(query, bank, bank_labels, num_classes, k,
                    chunk_size=2048):
    """Brute force: chunked similarity matrix, per-class torch.topk."""
    query = torch.nn.functional.normalize(torch.from_numpy(query), dim=1)
    bank = torch.nn.functional.normalize(torch.from_numpy(bank), dim=1)
    columns = [
        torch.from_numpy(np.flatnonzero(bank_labels == c))
        for c in range(num_classes)
    ]
    sums = torch.empty(len(query), num_classes, dtype=torch.float64)
    for start in range(0, len(query), chunk_size):
        similarities = query[start:start + chunk_size] @ bank.T
        for c, cols in enumerate(columns):
            sums[start:start + chunk_size, c] = similarities[:, cols].topk(
                k, dim=1).values.sum(1)
    probs = sums.clamp(min=0)
    probs = probs / probs.sum(1, keepdim=True)
    return probs.max(1).values.numpy(), sums.argmax(1).numpy()


def numpy_class_knn(query, bank, bank_labels, num_classes, k,
                    chunk_size=2048):
    """Brute force: chunked similarity matrix, per-class np.partition."""
    query, bank = l2_normalize(query), l2_normalize(bank)
    columns = [np.flatnonzero(bank_labels == c) for c in range(num_classes)]
    sums = np.empty((len(query), num_classes))
    for start in range(0, len(query), chunk_size):
        similarities = query[start:start + chunk_size] @ bank.T
        for c, cols in enumerate(columns):
            top = np.partition(similarities[:, cols], -k, axis=1)[:, -k:]
            sums[start:start + chunk_size, c] = top.sum(1)
    probs = np.clip(sums, 0, None)
    probs /= probs.sum(1, keepdims=True)
    return probs.max(1), sums.argmax(1)


def per_query_loop_class_knn(query, bank, bank_labels, num_classes, k):
    """One query at a time, as in the authors' scorer."""
    bank = l2_normalize(bank)
    scores = []
    for vector in query:
        vector = vector / np.linalg.norm(vector)
        similarities = bank @ vector
        sums = np.array([
            np.sort(similarities[bank_labels == c])[-k:].sum()
            for c in range(num_classes)
        ])
        scores.append((sums / sums.sum()).max())
    return np.array(scores)


def torch_knn(query, bank, k, chunk_size=2048):
    """Brute force: chunked similarity matrix, torch.topk."""
    query = torch.nn.functional.normalize(torch.from_numpy(query), dim=1)
    bank = torch.nn.functional.normalize(torch.from_numpy(bank), dim=1)
    kth = torch.cat([
        (query[s:s + chunk_size] @ bank.T).topk(k, dim=1).values[:, -1]
        for s in range(0, len(query), chunk_size)
    ])
    return -(2 - 2 * kth.double()).numpy()


def raw_faiss_search(normalized_query, normalized_bank, k):
    index = faiss.IndexFlatIP(normalized_bank.shape[1])
    index.add(normalized_bank)
    return index.search(normalized_query, k)


def arpl_style_oscr_loop(known_scores, unknown_scores, known_correct):
    """The O(n^2) loop of ARPL's ``compute_oscr``."""
    k_target = np.concatenate(
        (known_correct.astype(float), np.zeros(len(unknown_scores))))
    u_target = np.concatenate(
        (np.zeros(len(known_scores)), np.ones(len(unknown_scores))))
    predict = np.concatenate((known_scores, unknown_scores))
    n = len(predict)
    ccr, fpr = [0.0] * (n + 2), [0.0] * (n + 2)
    idx = predict.argsort()
    s_k_target, s_u_target = k_target[idx], u_target[idx]
    for i in range(n - 1):
        ccr[i] = float(s_k_target[i + 1:].sum()) / len(known_scores)
        fpr[i] = float(s_u_target[i:].sum()) / len(unknown_scores)
    ccr[n + 1] = fpr[n + 1] = 1.0
    roc = sorted(zip(fpr, ccr), reverse=True)
    return sum((roc[j][0] - roc[j + 1][0]) * (roc[j][1] + roc[j + 1][1]) / 2
               for j in range(n + 1))


def knn_tasks(args, dim: int, rng: np.random.Generator
              ) -> Dict[str, Callable[[], Callable]]:
    query = rng.normal(size=(args.queries, dim)).astype(np.float32)
    bank = rng.normal(size=(args.bank, dim)).astype(np.float32)
    labels = rng.integers(0, args.num_classes, args.bank)
    normalized_query, normalized_bank = l2_normalize(query), l2_normalize(
        bank)
    classes = args.num_classes
    return {
        f'class_knn/faiss/{dim}':
        lambda: lambda: class_knn_scores(query, bank, labels, classes, 3),
        f'class_knn/torch/{dim}':
        lambda: lambda: torch_class_knn(query, bank, labels, classes, 3),
        f'class_knn/numpy/{dim}':
        lambda: lambda: numpy_class_knn(query, bank, labels, classes, 3),
        f'knn/faiss/{dim}':
        lambda: lambda: knn_scores(query, bank, 50),
        f'knn/raw_faiss/{dim}':
        lambda: lambda: raw_faiss_search(normalized_query, normalized_bank,
                                         50),
        f'knn/torch/{dim}':
        lambda: lambda: torch_knn(query, bank, 50),
    }, (query, bank, labels)


def main(argv=None) -> dict:
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    info = machine_info(CPU)
    info['faiss'] = faiss.__version__
    info['faiss_omp_threads'] = faiss.omp_get_max_threads()
    info['numpy'] = np.__version__
    print(f'machine: {info}')

    tasks, data = {}, {}
    for dim in args.dims:
        dim_tasks, data[dim] = knn_tasks(args, dim, rng)
        tasks.update(dim_tasks)

    n = args.oscr_samples
    oscr_scores = rng.integers(0, n // 4, n).astype(float)  # many ties
    is_known = rng.random(n) < 0.6
    correct = is_known & (rng.random(n) < 0.8)
    tasks['oscr/vectorised'] = lambda: lambda: oscr(oscr_scores, is_known,
                                                    correct)
    tasks['oscr_arpl/vectorised'] = lambda: lambda: oscr_arpl(
        oscr_scores, is_known, correct)
    tasks['oscr_arpl/loop'] = lambda: lambda: arpl_style_oscr_loop(
        oscr_scores[is_known], oscr_scores[~is_known], correct[is_known])

    timings = interleaved_timings(tasks, args.repeats, args.warmup, CPU)
    stats = {name: summarize(seconds) for name, seconds in timings.items()}

    loops = {}
    for dim in args.dims:
        query, bank, labels = data[dim]
        subset = query[:args.loop_queries]
        seconds = time_call(
            partial(per_query_loop_class_knn, subset, bank, labels,
                    args.num_classes, 3), CPU)
        loops[dim] = dict(
            measured_queries=len(subset),
            measured_s=seconds,
            extrapolated_s=seconds * args.queries / len(subset))

    rows = []
    for dim in args.dims:
        faiss_s = stats[f'class_knn/faiss/{dim}']['median_s']
        for name in ('faiss', 'torch', 'numpy'):
            entry = stats[f'class_knn/{name}/{dim}']
            rows.append((f'class_knn {name}', dim, entry['median_s'],
                         entry['iqr_s'], entry['median_s'] / faiss_s))
        rows.append((f'class_knn per-query loop (EXTRAPOLATED from '
                     f'{loops[dim]["measured_queries"]} queries)', dim,
                     loops[dim]['extrapolated_s'], float('nan'),
                     loops[dim]['extrapolated_s'] / faiss_s))
        knn_s = stats[f'knn/faiss/{dim}']['median_s']
        for name in ('faiss', 'raw_faiss', 'torch'):
            entry = stats[f'knn/{name}/{dim}']
            rows.append((f'knn {name}', dim, entry['median_s'],
                         entry['iqr_s'], entry['median_s'] / knn_s))
    oscr_s = stats['oscr/vectorised']['median_s']
    for name in ('oscr/vectorised', 'oscr_arpl/vectorised', 'oscr_arpl/loop'):
        entry = stats[name]
        rows.append((name.replace('/', ' '), '-', entry['median_s'],
                     entry['iqr_s'], entry['median_s'] / oscr_s))

    results = dict(
        benchmark='evaluator',
        machine=info,
        load_average_after=list(os.getloadavg()),
        settings=dict(
            queries=args.queries, bank=args.bank, dims=args.dims,
            num_classes=args.num_classes, class_knn_k=3, knn_k=50,
            loop_queries=args.loop_queries, oscr_samples=n,
            repeats=args.repeats, warmup=args.warmup, seed=args.seed),
        timings=stats,
        per_query_loop=loops,
        targets=dict(
            class_knn_speedup_vs_loop={
                dim: loops[dim]['extrapolated_s'] /
                stats[f'class_knn/faiss/{dim}']['median_s']
                for dim in args.dims
            },
            knn_ratio_to_raw_faiss={
                dim: stats[f'knn/faiss/{dim}']['median_s'] /
                stats[f'knn/raw_faiss/{dim}']['median_s']
                for dim in args.dims
            }))
    print(
        markdown_table(
            ('method', 'dim', 'median (s)', 'IQR (s)',
             'ratio to the first row of its group'),
            [(name, dim, f'{median:.3f}',
              '-' if np.isnan(iqr) else f'{iqr:.3f}', f'{ratio:.2f}x')
             for name, dim, median, iqr, ratio in rows]))
    print(f"targets: {results['targets']}")
    write_json(results, args.out)
    return results


if __name__ == '__main__':
    main()
