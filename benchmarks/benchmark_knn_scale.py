"""Time and peak memory of the kNN scores at ImageNet scale.

A synthetic, clustered bank (``--classes`` class centres plus Gaussian
noise, like the features of a trained model) and queries (half near the
known centres, half near new ones) are scored by ``knn_scores`` and
``class_knn_scores``, each case in a fresh subprocess, which reports its
wall time, CPU time (user + system) and RSS high-water mark
(``resource.getrusage``). On a shared machine the CPU time of these
single-threaded runs is the measure that the other jobs do not inflate;
the ratios to the reference use it. The reference
is one exact faiss search of the whole bank (``IndexFlatIP``, k = 50);
with ``--paired-reference`` every case also times that search right after
its own run, in the same process. The IVF cases also report the time of
building the index alone and their recall of the exact top-k.

Usage (``--quick``: tiny sizes, seconds, for smoke tests only)::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/benchmark_knn_scale.py \\
        --bank 128000 --queries 5000 --out benchmarks/results/knn_128k.json
    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/benchmark_knn_scale.py \\
        --bank 1281167 --queries 50000 --cases faiss knn_fp32
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch
from benchmark_utils import machine_info, markdown_table, write_json

#: Every case: (kind, bank_dtype, extra options).
CASES = {
    'faiss': ('faiss', 'float32', {}),
    'knn_fp32': ('knn', 'float32', {}),
    'knn_fp16': ('knn', 'float16', {}),
    'class_knn_fp32': ('class_knn', 'float32', {}),
    'class_knn_fp16': ('class_knn', 'float16', {}),
    'ivf_fp32': ('ivf', 'float32', {}),
    'ivf_fp16': ('ivf', 'float16', {}),
}
KNN_K = 50
CLASS_KNN_K = 3


def synthetic(num_bank, num_queries, dim, num_classes, seed=0):
    """Clustered float32 bank, its labels and queries (half unknown)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((2 * num_classes, dim), dtype=np.float32)
    labels = rng.integers(0, num_classes, num_bank)
    labels[:num_classes] = np.arange(num_classes)
    query = centers[rng.integers(0, 2 * num_classes, num_queries)]
    bank = centers[labels]
    # Noise block by block, so that the RSS high-water mark is the call's.
    for vectors in (bank, query):
        for start in range(0, len(vectors), 65536):
            block = vectors[start:start + 65536]
            block += rng.standard_normal(block.shape, dtype=np.float32)
    return bank, labels, query


def max_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def current_rss_mib():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE') / 2**20


def run_case(args, name):
    """Run one case in this process and return its measurements."""
    import faiss

    from gradmix_plugin.evaluation.functional import (
        _ivf_index,
        class_knn_scores,
        knn_scores,
        l2_normalize,
    )
    kind, bank_dtype, _ = CASES[name]
    bank, labels, query = synthetic(args.bank, args.queries, args.dim,
                                    args.classes)
    before = current_rss_mib()
    result = dict(case=name, bank=args.bank, queries=args.queries,
                  dim=args.dim, classes=args.classes, bank_dtype=bank_dtype,
                  threads=faiss.omp_get_max_threads())
    start, start_cpu = time.perf_counter(), cpu_seconds()
    if kind == 'faiss':
        index = faiss.IndexFlatIP(args.dim)
        index.add(l2_normalize(bank))
        index.search(l2_normalize(query), KNN_K)
    elif kind == 'knn':
        knn_scores(query, bank, KNN_K, use_gpu=False, bank_dtype=bank_dtype)
    elif kind == 'class_knn':
        class_knn_scores(query, bank, labels, args.classes, CLASS_KNN_K,
                         use_gpu=False, bank_dtype=bank_dtype)
    else:
        knn_scores(query, bank, KNN_K, use_gpu=False, bank_dtype=bank_dtype,
                   index='ivf', nlist=args.nlist, nprobe=args.nprobe)
    result['seconds'] = time.perf_counter() - start
    result['cpu_seconds'] = cpu_seconds() - start_cpu
    result['peak_rss_mib'] = max_rss_mib()
    result['rss_before_mib'] = before
    result['inputs_mib'] = (bank.nbytes + query.nbytes) / 2**20
    if args.paired_reference:
        start, start_cpu = time.perf_counter(), cpu_seconds()
        index = faiss.IndexFlatIP(args.dim)
        index.add(l2_normalize(bank))
        index.search(l2_normalize(query), KNN_K)
        result['reference_seconds'] = time.perf_counter() - start
        result['reference_cpu_seconds'] = cpu_seconds() - start_cpu
        result['cpu_ratio_to_reference'] = (
            result['cpu_seconds'] / result['reference_cpu_seconds'])
    if kind == 'ivf':
        # Recall of the exact top-k on a sample of the queries.
        sample = l2_normalize(query[:args.recall_queries])
        start_cpu = cpu_seconds()
        index = _ivf_index(bank, bank_dtype, args.nlist, args.nprobe, 1e-12,
                           None)
        result['build_cpu_seconds'] = cpu_seconds() - start_cpu
        approx_sims, approx_ids = index.search(sample, KNN_K)
        exact_sims, exact_ids = faiss.knn(sample, l2_normalize(bank), KNN_K,
                                          faiss.METRIC_INNER_PRODUCT)
        result['nlist'], result['nprobe'] = args.nlist, args.nprobe
        result['recall_at_k'] = float(
            np.mean([
                np.isin(e, a).mean()
                for e, a in zip(exact_ids, approx_ids)
            ]))
        result['kth_similarity_max_error'] = float(
            np.abs(approx_sims[:, -1] - exact_sims[:, -1]).max())
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--bank', type=int, default=128_000)
    parser.add_argument('--queries', type=int, default=5_000)
    parser.add_argument('--dim', type=int, default=128)
    parser.add_argument('--classes', type=int, default=1000)
    parser.add_argument('--nlist', type=int, default=1024)
    parser.add_argument('--nprobe', type=int, default=32)
    parser.add_argument('--recall-queries', type=int, default=1000)
    parser.add_argument('--cases', nargs='+', default=list(CASES),
                        choices=list(CASES))
    parser.add_argument('--paired-reference', action='store_true')
    parser.add_argument('--quick', action='store_true')
    parser.add_argument('--out', help='JSON file of the results')
    parser.add_argument('--worker', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_case(args, args.worker)))
        return
    if args.quick:
        args.bank, args.queries, args.classes = 5000, 200, 50
        args.nlist, args.nprobe, args.recall_queries = 32, 4, 200
    output = dict(machine=machine_info(torch.device('cpu')), results=[])
    for name in args.cases:
        command = [sys.executable, __file__, '--worker', name] + [
            f'--{key.replace("_", "-")}={getattr(args, key)}'
            for key in ('bank', 'queries', 'dim', 'classes', 'nlist',
                        'nprobe', 'recall_queries')
        ] + (['--paired-reference'] if args.paired_reference else [])
        lines = subprocess.run(
            command, check=True, capture_output=True, text=True).stdout
        output['results'].append(json.loads(lines.strip().splitlines()[-1]))
        print(json.dumps(output['results'][-1]), flush=True)
        write_json(output, args.out)
    print(markdown_table(
        ('case', 'bank x queries', 'wall s', 'CPU s', 'CPU x reference',
         'peak RSS MiB', 'above start MiB', 'recall@50'),
        [(r['case'], f"{r['bank']} x {r['queries']}", f"{r['seconds']:.1f}",
          f"{r['cpu_seconds']:.1f}",
          f"{r['cpu_ratio_to_reference']:.2f}"
          if 'cpu_ratio_to_reference' in r else '',
          f"{r['peak_rss_mib']:.0f}",
          f"{r['peak_rss_mib'] - r['rss_before_mib']:.0f}",
          f"{r['recall_at_k']:.3f}" if 'recall_at_k' in r else '')
         for r in output['results']]))


if __name__ == '__main__':
    main()
