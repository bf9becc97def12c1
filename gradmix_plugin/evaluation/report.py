"""Reports of open-set results: tables, JSON, per-sample arrays and plots.

Files written by :func:`write_osr_report` into a work directory:

- ``osr_metrics.json`` (:data:`METRICS_FILENAME`): the flat metric dict of
  ``OSRMetric`` (keys like ``osr/class_knn/auroc``, values in percent, NaN
  written as ``null``) and, under ``provenance``, where the numbers come
  from (config, data, split, checkpoint and its SHA-256, versions);
  ``tools/summarize_osr.py`` reads it.
- ``osr_metrics.md``: the table of :func:`format_osr_table`.
- ``npz_path`` (optional): the per-sample arrays
  ``OSRMetric.last_per_sample`` (``is_known``, ``gt_label``,
  ``pred_label``, ``score_{name}``, ``pred_{name}`` and, on OOD
  benchmarks, ``ood_source``).
- In ``show_dir`` (optional): ``roc.png``, ``score_hist.png`` and
  ``oscr.png``.
"""
import json
import math
import os
import os.path as osp
import warnings
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from .functional import oscr_curve
from .keys import (
    GROUP_MARK,
    SCORE_METRICS,
    parse_metric_key,
    subset_label,
)

METRICS_FILENAME = 'osr_metrics.json'
#: Key of the provenance record in ``osr_metrics.json``.
PROVENANCE_KEY = 'provenance'
#: Table columns: metric key and header.
METRIC_COLUMNS = dict(
    zip(SCORE_METRICS,
        ('AUROC', 'AUPR-In', 'AUPR-Out', 'FPR@95 (known +)', 'FPR@95 (OOD +)',
         'Acc', 'OSCR', 'OSCR (ARPL)', 'FPR@95 (OpenOOD)', 'AUROC (OpenOOD)',
         'AUPR-In (OpenOOD)', 'AUPR-Out (OpenOOD)', 'ACC (OpenOOD)')))
#: Below every table with an accuracy column.
ACCURACY_NOTE = (
    'Acc is per score: the closed-set accuracy of the predictions that '
    'come with that score (nearest class for class_knn and mahalanobis, '
    "the classifier's argmax for the others; without logits, class_knn's)."
)


def _format_value(value: float, std: Optional[float], digits: int) -> str:
    if std is None:
        return f'{value:.{digits}f}'
    if math.isnan(std):
        return f'{value:.{digits}f} ± -'
    return f'{value:.{digits}f} ± {std:.{digits}f}'


def format_osr_table(metrics: Dict[str, float],
                     std: Optional[Dict[str, float]] = None,
                     digits: int = 2) -> str:
    """Format OSR metrics as a markdown table, one row per score.

    With per-source keys (OOD benchmarks, :func:`split_ood_subset`), the
    table has one row per score and OOD subset, in the order: each source,
    each group (``<group> (mean)``), then ``all`` (every OOD source
    together). Metrics that belong to no score (``osr/accuracy``, other
    metrics of the evaluator) are listed below the table.

    Args:
        metrics (dict[str, float]): Flat metric dict, e.g. what
            ``OSRMetric`` returns (keys ``[prefix/][subset/]score/metric``).
        std (dict[str, float], optional): Standard deviations with the same
            keys; cells then read ``mean ± std``. Defaults to None.
        digits (int): Decimals. Defaults to 2.

    Returns:
        str: The table.
    """
    cells: Dict[Tuple[str, Optional[str]], Dict[str, str]] = {}
    subsets: Dict[Optional[str], None] = {}
    scores: Dict[str, None] = {}
    others = []
    for key, value in metrics.items():
        parsed = parse_metric_key(key)
        text = _format_value(value, None if std is None else std.get(key),
                             digits)
        if parsed.score is None:
            others.append(f'{key}: {text}')
        else:
            cells.setdefault((parsed.score, parsed.subset),
                             {})[parsed.metric] = text
            subsets[parsed.subset] = None
            scores[parsed.score] = None
    # Sources, then groups, then all samples.
    order = sorted(
        subsets,
        key=lambda s: 2 if s is None else int(s.startswith(GROUP_MARK)))
    with_subsets = order != [None]
    lines = []
    if cells:
        columns = [
            m for m in METRIC_COLUMNS
            if any(m in row for row in cells.values())
        ]
        head = ['Score'] + (['OOD'] if with_subsets else [])
        lines.append('| ' + ' | '.join(head + [
            METRIC_COLUMNS[m] for m in columns]) + ' |')
        lines.append('|---' * (len(columns) + len(head)) + '|')
        for score in scores:
            for subset in (s for s in order if (score, s) in cells):
                row = [score] + ([subset_label(subset)]
                                 if with_subsets else [])
                row += [cells[score, subset].get(m, '-') for m in columns]
                lines.append('| ' + ' | '.join(row) + ' |')
        if 'accuracy' in columns:
            lines.append('')
            lines.append(ACCURACY_NOTE)
    if others:
        if lines:
            lines.append('')
        lines.extend(others)
    return '\n'.join(lines)


def save_osr_metrics(metrics: Dict[str, float],
                     path: str,
                     provenance: Optional[dict] = None) -> None:
    """Write metrics as JSON (NaN as ``null``), with their provenance.

    Args:
        metrics (dict[str, float]): The flat metric dict.
        path (str): The JSON file.
        provenance (dict, optional): Written under the key
            :data:`PROVENANCE_KEY` (see
            :func:`gradmix_plugin.utils.collect_provenance`). Defaults to
            None.
    """
    values = {
        k: None if math.isnan(float(v)) else float(v)
        for k, v in metrics.items()
    }
    if provenance is not None:
        values[PROVENANCE_KEY] = provenance
    with open(path, 'w') as f:
        json.dump(values, f, indent=2)


def load_osr_metrics(path: str) -> Dict[str, float]:
    """Read the metrics written by :func:`save_osr_metrics` (``null`` ->
    NaN), without the provenance."""
    with open(path) as f:
        values = json.load(f)
    return {
        k: float('nan') if v is None else float(v)
        for k, v in values.items() if k != PROVENANCE_KEY
    }


def load_osr_provenance(path: str) -> Optional[dict]:
    """The provenance record of a metrics JSON, or None for files written
    without one."""
    with open(path) as f:
        return json.load(f).get(PROVENANCE_KEY)


def save_per_sample(per_sample: Dict[str, np.ndarray], path: str) -> None:
    """Write per-sample arrays (``OSRMetric.last_per_sample``) as npz."""
    np.savez_compressed(path, **per_sample)


def _score_names(per_sample: Dict[str, np.ndarray]) -> List[str]:
    return [k[len('score_'):] for k in per_sample if k.startswith('score_')]


def _unknown_subsets(per_sample: Dict[str, np.ndarray],
                     is_known: np.ndarray) -> List[Tuple[str, np.ndarray]]:
    """``(name, mask)`` of the unknown samples of every OOD source (in
    order of appearance), then ``('all', ~is_known)``; without sources only
    ``('unknown', ~is_known)``."""
    if 'ood_source' not in per_sample:
        return [('unknown', ~is_known)]
    sources = np.asarray(per_sample['ood_source']).astype(str)
    names = dict.fromkeys(sources[~is_known])
    return [(name, sources == name) for name in names] + [('all', ~is_known)]


def _plot_panels(panels: Dict[str, List[Tuple[str, str, np.ndarray]]],
                 curve: Callable[[str, np.ndarray], Tuple[np.ndarray, ...]],
                 axes_labels: Dict[str, str], area_name: str,
                 diagonal: bool = False):
    """One panel per entry of ``panels``, one line per ``(label, score,
    rows)`` in it, at ``curve(score, rows)``, its area under the curve (in
    percent, as ``area_name``) in the legend.

    Returns:
        matplotlib.figure.Figure: The figure.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5 * len(panels), 5))
    for ax, (title, lines) in zip(
            np.atleast_1d(fig.subplots(1, len(panels))), panels.items()):
        for label, name, rows in lines:
            x, y = curve(name, rows)[:2]
            area = 100 * np.trapezoid(y, x)
            ax.plot(x, y, label=f'{label} ({area_name} {area:.2f})')
        if diagonal:
            ax.plot([0, 1], [0, 1], color='grey', linestyle=':')
        ax.set(title=title, **axes_labels)
        ax.legend(loc='lower right')
    return fig


def plot_osr_curves(per_sample: Dict[str, np.ndarray],
                    show_dir: str) -> List[str]:
    """Plot ROC curves, score histograms and OSCR curves as PNG files.

    Without OOD sources, ``roc.png`` and ``oscr.png`` show one curve per
    score. With them (``per_sample['ood_source']``, OOD benchmarks), they
    show one panel per score with one curve per source (the known samples
    against that source) and one for all sources together, and the
    histograms show every source separately.

    Args:
        per_sample (dict[str, np.ndarray]): ``OSRMetric.last_per_sample``.
        show_dir (str): Output directory (created if needed).

    Returns:
        list[str]: Paths of ``roc.png``, ``score_hist.png`` and
        ``oscr.png``; empty if the set lacks known or unknown samples.
    """
    from matplotlib.figure import Figure
    from sklearn.metrics import roc_curve

    is_known = np.asarray(per_sample['is_known'], dtype=bool)
    labels = np.asarray(per_sample['gt_label'])
    names = _score_names(per_sample)
    if is_known.all() or not is_known.any() or not names:
        warnings.warn('no OSR plots: they need known and unknown samples '
                      'and at least one score',
                      stacklevel=2)
        return []
    os.makedirs(show_dir, exist_ok=True)
    subsets = _unknown_subsets(per_sample, is_known)
    if len(subsets) == 1:
        panels = {'': [(name, name, np.ones_like(is_known))
                       for name in names]}
    else:
        panels = {
            name: [(source, name, is_known | unknown)
                   for source, unknown in subsets]
            for name in names
        }

    def roc(name, rows):
        return roc_curve(is_known[rows], per_sample[f'score_{name}'][rows])

    def oscr(name, rows):
        correct = is_known & (per_sample[f'pred_{name}'] == labels)
        return oscr_curve(per_sample[f'score_{name}'][rows], is_known[rows],
                          correct[rows])

    figures = dict(
        roc=_plot_panels(
            panels,
            roc,
            dict(
                xlabel='FPR (unknown accepted)',
                ylabel='TPR (known accepted), known = positive'),
            'AUROC',
            diagonal=True))

    fig = Figure(figsize=(4 * len(names), 3.5))
    groups = [('known', is_known)] + (
        subsets if len(subsets) == 1 else subsets[:-1])
    for ax, name in zip(np.atleast_1d(fig.subplots(1, len(names))), names):
        values = per_sample[f'score_{name}']
        bins = np.histogram_bin_edges(values, bins=50)
        for label, rows in groups:
            ax.hist(values[rows], bins=bins, alpha=0.5, density=True,
                    label=label)
        ax.set(title=name, xlabel='score (higher = more known)',
               ylabel='density')
        ax.legend()
    figures['score_hist'] = fig
    figures['oscr'] = _plot_panels(
        panels, oscr,
        dict(
            xlabel='FPR (unknown accepted)',
            ylabel='CCR (known accepted and correct)'), 'OSCR')
    paths = []
    for name in ('roc', 'score_hist', 'oscr'):
        paths.append(osp.join(show_dir, f'{name}.png'))
        figures[name].savefig(paths[-1], dpi=120, bbox_inches='tight')
    return paths


def write_osr_report(metrics: Dict[str, float],
                     per_sample: Optional[Dict[str, np.ndarray]],
                     out_dir: str,
                     npz_path: Optional[str] = None,
                     show_dir: Optional[str] = None,
                     provenance: Optional[dict] = None) -> Dict[str, str]:
    """Write the report files of one evaluation.

    Args:
        metrics (dict[str, float]): Flat metric dict of the evaluator.
        per_sample (dict[str, np.ndarray], optional):
            ``OSRMetric.last_per_sample``, needed by ``npz_path`` and
            ``show_dir``.
        out_dir (str): Directory of ``osr_metrics.json`` and
            ``osr_metrics.md``.
        npz_path (str, optional): Write the per-sample arrays to this npz
            file. Defaults to None (not written).
        show_dir (str, optional): Directory of the PNG plots. Defaults to
            None (no plots).
        provenance (dict, optional): Written into the JSON with the metrics
            (:func:`save_osr_metrics`). Defaults to None.

    Returns:
        dict[str, str]: Written paths by kind (``'json'``, ``'table'``,
        ``'per_sample'``, ``'roc'``, ``'score_hist'``, ``'oscr'``).
    """
    if per_sample is None and (npz_path or show_dir):
        raise ValueError(
            'npz_path and show_dir need the per-sample arrays, got '
            'per_sample=None')
    table = format_osr_table(metrics)  # OSRMetric has logged it already
    os.makedirs(out_dir, exist_ok=True)
    written = dict(
        json=osp.join(out_dir, METRICS_FILENAME),
        table=osp.join(out_dir, 'osr_metrics.md'))
    save_osr_metrics(metrics, written['json'], provenance)
    with open(written['table'], 'w') as f:
        f.write(table + '\n')
    if npz_path:
        npz_dir = osp.dirname(osp.abspath(npz_path))
        os.makedirs(npz_dir, exist_ok=True)
        save_per_sample(per_sample, npz_path)
        written['per_sample'] = npz_path
    if show_dir:
        for path in plot_osr_curves(per_sample, show_dir):
            written[osp.splitext(osp.basename(path))[0]] = path
    return written
