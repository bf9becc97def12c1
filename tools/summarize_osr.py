"""Summarise open-set metrics over several runs (e.g. the 5 class splits).

Reads the ``osr_metrics.json`` that ``tools/test.py`` writes into every
work directory, checks that the runs belong together, prints the mean ±
sample standard deviation (``ddof=1``) of every metric as a markdown table
with the splits and seeds it averaged, and optionally writes the summary as
CSV, LaTeX and a bar plot with error bars (overall and per split).

Refused, with the offending paths and values: the same file twice, two
files of one checkpoint (``checkpoint_sha256``), the same (split, seed)
twice, and runs of different protocols, dataset types or configs. These
checks read the ``provenance`` that ``tools/test.py`` records; files
written before it have none and cannot be mixed with files that have it.
Among such legacy files only the same file given twice is detected.

Examples:
    python tools/summarize_osr.py work_dirs/cifar10_split{0..4}
    python tools/summarize_osr.py work_dirs/*_split* --csv summary.csv \
        --latex summary.tex --plot summary.png
"""
import argparse
import sys
from typing import Optional, Sequence

from gradmix_plugin.evaluation import METRICS_FILENAME
from gradmix_plugin.evaluation.summary import (
    ALL_RUNS,
    SummaryError,
    check_runs,
    describe_runs,
    format_summary,
    load_runs,
    summarize_groups,
    write_summary,
)

__all__ = ['SummaryError', 'main', 'parse_args']


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Mean ± std of open-set metrics over work dirs')
    parser.add_argument(
        'work_dirs',
        nargs='+',
        help=f'work dirs containing {METRICS_FILENAME} (or the JSON files)')
    parser.add_argument('--csv', help='also write the summary as CSV here')
    parser.add_argument(
        '--latex', help='also write the summary as a LaTeX tabular here')
    parser.add_argument(
        '--plot', help='also write a bar plot with error bars (PNG) here')
    parser.add_argument(
        '--digits', type=int, default=2, help='decimals in the table')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    runs = load_runs(args.work_dirs)
    check_runs(runs)
    groups = summarize_groups(runs)
    print(f'Open-set metrics (%), mean ± std over {len(runs)} runs:\n')
    print(format_summary(groups, args.digits))
    print('\n' + describe_runs(runs))
    incomplete = [k for k, s in groups[ALL_RUNS].items() if s['n'] < len(runs)]
    if incomplete:
        print(f'\nnote: {incomplete} are missing or NaN in some runs and '
              'are averaged over the others')
    for path in write_summary(
            groups,
            csv_path=args.csv,
            latex=args.latex,
            plot=args.plot,
            digits=args.digits):
        print(f'written: {path}')


if __name__ == '__main__':
    try:
        main()
    except (SummaryError, FileNotFoundError) as error:
        sys.exit(f'error: {error}')
