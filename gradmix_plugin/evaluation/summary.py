"""Summaries of open-set metrics over several runs (e.g. the 5 splits).

Reads the ``osr_metrics.json`` that the test run writes into every work
directory, checks that the runs belong together, and computes the mean ±
sample standard deviation (``ddof=1``) of every metric over all runs and
per split, as markdown, CSV, LaTeX and a bar plot with error bars.
Used by ``tools/summarize_osr.py`` and ``tools/run_protocol.py``.

Refused, with the offending paths and values: the same file twice, two
files of one checkpoint (``checkpoint_sha256``), the same (split, seed)
twice, and runs of different protocols, dataset types or configs. These
checks read the ``provenance`` that the test run records; files written
before it have none and cannot be mixed with files that have it. Among
such legacy files only the same file given twice is detected.
"""
import csv
import glob
import os.path as osp
import warnings
from collections import defaultdict
from typing import Dict, List, NamedTuple, Optional, Sequence

import numpy as np

from gradmix_plugin.evaluation import (
    METRICS_FILENAME,
    format_osr_table,
    load_osr_metrics,
    load_osr_provenance,
    split_metric_key,
)
from gradmix_plugin.evaluation.report import METRIC_COLUMNS

#: The group of a summary over every run (the others are split indices).
ALL_RUNS = 'all'
#: Provenance entries that must agree between summarised runs.
SHARED_KEYS = ('protocol', 'dataset_type', 'config_name')


class SummaryError(ValueError):
    """The given runs cannot be summarised together."""


class Run(NamedTuple):
    """One evaluated run.

    Args:
        path (str): Its metrics file.
        metrics (dict[str, float]): The flat metrics (NaN for ``null``).
        provenance (dict, optional): What ``tools/test.py`` recorded about
            the run (config, protocol, split, seed, checkpoint, ...); None
            for files written before it did.
        split (int, optional): The OSR split index (None if unknown).
        seed (int, optional): The random seed (None if unknown).
    """
    path: str
    metrics: Dict[str, float]
    provenance: Optional[dict]
    split: Optional[int] = None
    seed: Optional[int] = None

    def shared(self, key: str):
        """A provenance entry of :data:`SHARED_KEYS`."""
        if key == 'config_name':
            config = self.provenance.get('config')
            return config and osp.splitext(osp.basename(config))[0]
        return self.provenance.get(key)


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


def read_run(path: str) -> Run:
    """Read one metrics file with its provenance."""
    provenance = load_osr_provenance(path)
    metrics = load_osr_metrics(path)
    if provenance is None:
        return Run(path, metrics, None)
    return Run(path, metrics, provenance, provenance.get('split'),
               provenance.get('seed'))


def load_runs(inputs: Sequence[str]) -> List[Run]:
    """Find and read the metrics file of every input.

    Args:
        inputs (Sequence[str]): Work dirs or metrics files.

    Returns:
        list[Run]: One run per input, in order.

    Raises:
        SummaryError: If two inputs resolve to the same file.
    """
    given: Dict[str, str] = {}
    paths = []
    for item in inputs:
        paths.append(find_metrics_file(item))
        real = osp.realpath(paths[-1])
        if real in given:
            raise SummaryError(
                f'{given[real]!r} and {item!r} are the same run '
                f'({paths[-1]}); give every run once')
        given[real] = item
    return [read_run(path) for path in paths]


def _describe(runs: Sequence[Run]) -> str:
    return ', '.join(run.path for run in runs)


def _refuse_duplicates(runs: Sequence[Run], what: str, key) -> None:
    groups = defaultdict(list)
    for run in runs:
        value = key(run)
        if value is not None:
            groups[value].append(run)
    for value, group in groups.items():
        if len(group) > 1:
            raise SummaryError(
                f'{len(group)} runs share the {what} {value!r}: '
                f'{_describe(group)}; summarise every run once')


def check_runs(runs: Sequence[Run]) -> None:
    """Refuse runs that do not belong in one summary.

    Args:
        runs (Sequence[Run]): The runs, e.g. from :func:`load_runs`.

    Raises:
        SummaryError: If some runs have provenance and others not, two runs
            share a checkpoint or a (split, seed), or the runs differ in
            protocol, dataset type or config name. Without any provenance
            only a warning says that duplicates cannot be detected.
    """
    legacy = [run for run in runs if run.provenance is None]
    if legacy and len(legacy) < len(runs):
        raise SummaryError(
            f'{_describe(legacy)} have no provenance (written by an older '
            'tools/test.py) and cannot be checked against the other runs; '
            'test these checkpoints again')
    if legacy:
        warnings.warn(
            f'none of the {len(runs)} metrics files has provenance (written '
            'by an older tools/test.py): runs of the same checkpoint or '
            'split and seed cannot be detected; test the checkpoints again '
            'to record it',
            stacklevel=2)
        return
    for key in SHARED_KEYS:
        values = defaultdict(list)
        for run in runs:
            values[run.shared(key)].append(run.path)
        if len(values) > 1:
            found = '; '.join(f'{value!r}: {", ".join(paths)}'
                              for value, paths in values.items())
            raise SummaryError(
                f'the runs mix {key} values ({found}); summarise runs of '
                'one config and protocol at a time')
    _refuse_duplicates(runs, 'checkpoint_sha256',
                       lambda run: run.provenance.get('checkpoint_sha256'))
    _refuse_duplicates(runs, '(split, seed)',
                       lambda run: (run.split, run.seed))


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


def summarize_groups(runs: Sequence[Run]) -> Dict[str, Dict[str, dict]]:
    """:func:`summarize` over every run and over the runs of each split.

    Args:
        runs (Sequence[Run]): The runs.

    Returns:
        dict[str, dict]: :data:`ALL_RUNS` and, for runs with a known split,
        ``'split <k>'`` (splits in increasing order), each a summary of
        :func:`summarize`.
    """
    groups = {ALL_RUNS: summarize([run.metrics for run in runs])}
    splits = sorted({run.split for run in runs if run.split is not None})
    for split in splits:
        groups[f'split {split}'] = summarize(
            [run.metrics for run in runs if run.split == split])
    return groups


def describe_runs(runs: Sequence[Run]) -> str:
    """The splits and seeds of the runs, and one line per run."""
    splits = sorted({run.split for run in runs}, key=str)
    seeds = sorted({run.seed for run in runs}, key=str)
    if all(run.split is None for run in runs):
        head = f'{len(runs)} runs, splits and seeds not recorded'
    else:
        head = f'{len(runs)} runs, splits {splits}, seeds {seeds}'
    lines = [head + ':']
    lines += [
        f'  split {run.split}, seed {run.seed}: {run.path}' for run in runs
    ]
    return '\n'.join(lines)


def _score_cells(summary: Dict[str, dict]) -> Dict[str, Dict[str, dict]]:
    """``{score: {metric: stats}}`` of the per-score keys, in the order
    of the metrics file (any score name, registered here or not)."""
    cells: Dict[str, Dict[str, dict]] = defaultdict(dict)
    for key, stats in summary.items():
        score, metric = split_metric_key(key)
        if score is not None and metric in METRIC_COLUMNS:
            cells[score][metric] = stats
    return dict(cells)


def group_rows(groups: Dict[str, Dict[str, dict]],
               digits: int = 2,
               plus_minus: str = ' ± ') -> List[List[str]]:
    """The cells of a table with one row per group and score.

    Args:
        groups (dict): :func:`summarize_groups` (or part of it).
        digits (int): Decimals. Defaults to 2.
        plus_minus (str): Between mean and std (the std is left out where
            it is NaN, e.g. of a single run). Defaults to ' ± '.

    Returns:
        list[list[str]]: The header (``Runs``, ``Score``, metric names),
        then one row per group and score.
    """
    cells = {name: _score_cells(summary) for name, summary in groups.items()}
    metrics = [
        m for m in METRIC_COLUMNS if any(
            m in row for group in cells.values() for row in group.values())
    ]
    rows = [['Runs', 'Score'] + [METRIC_COLUMNS[m] for m in metrics]]
    for name, group in cells.items():
        for score, row in group.items():
            values = []
            for metric in metrics:
                stats = row.get(metric)
                if stats is None:
                    values.append('-')
                    continue
                values.append(f'{stats["mean"]:.{digits}f}')
                if not np.isnan(stats['std']):
                    values[-1] += f'{plus_minus}{stats["std"]:.{digits}f}'
            rows.append([name, score] + values)
    return rows


def format_summary(groups: Dict[str, Dict[str, dict]],
                   digits: int = 2) -> str:
    """Markdown of :func:`summarize_groups`: the table of all runs, then,
    with more than one split, a table with one row per split and score."""
    summary = groups[ALL_RUNS]
    text = format_osr_table({k: s['mean']
                             for k, s in summary.items()},
                            std={k: s['std']
                                 for k, s in summary.items()},
                            digits=digits)
    splits = {k: v for k, v in groups.items() if k != ALL_RUNS}
    if len(splits) > 1:
        rows = group_rows(splits, digits)
        lines = ['| ' + ' | '.join(row) + ' |' for row in rows]
        lines.insert(1, '|---' * len(rows[0]) + '|')
        text += '\n\nPer split:\n\n' + '\n'.join(lines)
    return text


def write_csv(groups: Dict[str, Dict[str, dict]], path: str) -> None:
    """Write one row per group and metric: group (``all`` or ``split k``),
    key, score, metric, mean, std, n."""
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['group', 'key', 'score', 'metric', 'mean', 'std',
                         'n'])
        for group, summary in groups.items():
            for key, stats in summary.items():
                score, metric = split_metric_key(key)
                writer.writerow([
                    group, key, score or '', metric if score else '',
                    stats['mean'], stats['std'], stats['n']
                ])


def format_latex(groups: Dict[str, Dict[str, dict]], digits: int = 2) -> str:
    """A LaTeX ``tabular`` (booktabs) of :func:`group_rows`."""
    rows = group_rows(groups, digits, plus_minus=' $\\pm$ ')
    rows = [[cell.replace('_', '\\_') for cell in row] for row in rows]
    lines = ['\\begin{tabular}{ll' + 'r' * (len(rows[0]) - 2) + '}',
             '\\toprule', ' & '.join(rows[0]) + ' \\\\', '\\midrule']
    lines += [' & '.join(row) + ' \\\\' for row in rows[1:]]
    lines += ['\\bottomrule', '\\end{tabular}']
    return '\n'.join(lines)


def plot_summary(summary: Dict[str, dict], path: str,
                 title: str = '') -> None:
    """Bar plot of a summary: metrics on the x axis, one bar per score,
    error bars of one standard deviation; written as PNG."""
    from matplotlib.figure import Figure

    cells = _score_cells(summary)
    metrics = [
        m for m in METRIC_COLUMNS if any(m in row for row in cells.values())
    ]
    x = np.arange(len(metrics))
    width = 0.8 / max(len(cells), 1)
    fig = Figure(figsize=(1.2 + 1.1 * len(metrics), 3.8))
    ax = fig.subplots()
    for i, (score, row) in enumerate(cells.items()):
        stats = [row.get(m, dict(mean=np.nan, std=np.nan)) for m in metrics]
        ax.bar(x + (i - (len(cells) - 1) / 2) * width,
               [s['mean'] for s in stats],
               width,
               yerr=np.nan_to_num([s['std'] for s in stats]),
               capsize=3,
               label=score)
    ax.set_xticks(x, [METRIC_COLUMNS[m] for m in metrics], rotation=20)
    ax.set(ylabel='%', ylim=(0, 105), title=title)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=120, bbox_inches='tight')


def write_summary(groups: Dict[str, Dict[str, dict]],
                  markdown: Optional[str] = None,
                  csv_path: Optional[str] = None,
                  latex: Optional[str] = None,
                  plot: Optional[str] = None,
                  digits: int = 2,
                  title: str = '') -> List[str]:
    """Write the summary files that are asked for.

    Args:
        groups (dict): :func:`summarize_groups` of the runs.
        markdown (str, optional): Path of the markdown tables
            (:func:`format_summary`, under ``title``).
        csv_path (str, optional): Path of the CSV (:func:`write_csv`).
        latex (str, optional): Path of the LaTeX table
            (:func:`format_latex`).
        plot (str, optional): Path of the bar plot of all runs
            (:func:`plot_summary`).
        digits (int): Decimals of the tables. Defaults to 2.
        title (str): Heading of the markdown file and the plot.

    Returns:
        list[str]: The written paths.
    """
    written = []
    if markdown:
        with open(markdown, 'w') as f:
            f.write(f'{title}\n\n{format_summary(groups, digits)}\n')
        written.append(markdown)
    if csv_path:
        write_csv(groups, csv_path)
        written.append(csv_path)
    if latex:
        with open(latex, 'w') as f:
            f.write(format_latex(groups, digits) + '\n')
        written.append(latex)
    if plot:
        plot_summary(groups[ALL_RUNS], plot, title)
        written.append(plot)
    return written
