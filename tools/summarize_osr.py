"""Summarise open-set metrics over several runs (e.g. the 5 class splits).

Reads the ``osr_metrics.json`` that ``tools/test.py`` writes into every
work directory, prints the mean ± sample standard deviation (``ddof=1``)
of every metric as a markdown table and optionally writes them as CSV.

Examples:
    python tools/summarize_osr.py work_dirs/cifar10_split{0..4}
    python tools/summarize_osr.py work_dirs/*_split* --csv summary.csv
"""
import argparse
import csv
import glob
import os.path as osp
from typing import Dict, List, Optional, Sequence

import numpy as np

from gradmix_plugin.evaluation import (
    METRICS_FILENAME,
    format_osr_table,
    load_osr_metrics,
    split_metric_key,
)


def find_metrics_file(work_dir: str) -> str:
    """The metrics file of a work directory.

    ``WORK_DIR/osr_metrics.json`` if it exists, else the most recently
    modified ``osr_metrics.json`` below ``WORK_DIR``; a path to a JSON file
    is used as is.
    """
    if osp.isfile(work_dir):
        return work_dir
    direct = osp.join(work_dir, METRICS_FILENAME)
    if osp.isfile(direct):
        return direct
    found = glob.glob(
        osp.join(glob.escape(work_dir), '**', METRICS_FILENAME),
        recursive=True)
    if not found:
        raise FileNotFoundError(
            f'no {METRICS_FILENAME} in {work_dir!r}; run tools/test.py with '
            'this work dir first')
    return max(found, key=osp.getmtime)


def summarize(runs: Sequence[Dict[str, float]]) -> Dict[str, dict]:
    """Mean, sample std and count of every metric over the runs.

    A metric missing or NaN in a run is left out of its statistics.

    Args:
        runs (Sequence[dict[str, float]]): Metric dicts, one per run.

    Returns:
        dict[str, dict]: Per metric key: ``mean``, ``std`` (NaN with fewer
        than two values) and ``n``.
    """
    keys: List[str] = []
    for run in runs:
        keys.extend(k for k in run if k not in keys)
    summary = {}
    for key in keys:
        values = np.array([run.get(key, np.nan) for run in runs], float)
        values = values[~np.isnan(values)]
        summary[key] = dict(
            mean=float(values.mean()) if values.size else float('nan'),
            std=float(values.std(ddof=1)) if values.size > 1 else float('nan'),
            n=int(values.size))
    return summary


def write_csv(summary: Dict[str, dict], path: str) -> None:
    """Write one row per metric: key, score, metric, mean, std, n."""
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['key', 'score', 'metric', 'mean', 'std', 'n'])
        for key, stats in summary.items():
            score, metric = split_metric_key(key)
            writer.writerow([
                key, score or '', metric if score else '', stats['mean'],
                stats['std'], stats['n']
            ])


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Mean ± std of open-set metrics over work dirs')
    parser.add_argument(
        'work_dirs',
        nargs='+',
        help=f'work dirs containing {METRICS_FILENAME} (or the JSON files)')
    parser.add_argument('--csv', help='also write the summary as CSV here')
    parser.add_argument(
        '--digits', type=int, default=2, help='decimals in the table')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    files = [find_metrics_file(d) for d in args.work_dirs]
    summary = summarize([load_osr_metrics(f) for f in files])
    print(f'Open-set metrics (%), mean ± std over {len(files)} runs:\n')
    print(
        format_osr_table({k: s['mean']
                          for k, s in summary.items()},
                         std={k: s['std']
                              for k, s in summary.items()},
                         digits=args.digits))
    incomplete = [k for k, s in summary.items() if s['n'] < len(files)]
    if incomplete:
        print(f'\nnote: {incomplete} are missing or NaN in some runs and '
              'are averaged over the others')
    if args.csv:
        write_csv(summary, args.csv)
        print(f'\nCSV written to {args.csv}')


if __name__ == '__main__':
    main()
