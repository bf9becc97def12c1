import csv
import json
import os
import os.path as osp

import numpy as np
import pytest
from helpers import load_tool
from matplotlib.image import imread

from gradmix_plugin.evaluation import (
    METRICS_FILENAME,
    MetricKey,
    OSRMetric,
    build_metric_key,
    format_osr_table,
    load_osr_metrics,
    parse_metric_key,
    plot_osr_curves,
    save_osr_metrics,
    split_metric_key,
    split_ood_subset,
    write_osr_report,
)
from gradmix_plugin.evaluation.report import ACCURACY_NOTE


def fake_evaluation(seed=0):
    rng = np.random.default_rng(seed)
    labels = np.concatenate([rng.integers(0, 3, 30), -np.ones(15, int)])
    logits = rng.normal(size=(45, 3)).astype(np.float32)
    logits[:30][np.arange(30), labels[:30]] += 2.0
    metrics, per_sample = OSRMetric.calculate(
        dict(logits=logits), labels, scores=('msp', 'mls'))
    return {f'osr/{k}': v for k, v in metrics.items()}, per_sample


def test_split_metric_key_and_table():
    assert split_metric_key('osr/class_knn/auroc') == ('class_knn', 'auroc')
    assert split_metric_key('mls/oscr') == ('mls', 'oscr')
    assert split_metric_key('osr/accuracy') == (None, 'osr/accuracy')
    table = format_osr_table({
        'osr/mls/auroc': 91.234,
        'osr/msp/auroc': 90.0,
        'osr/msp/oscr': 80.5,
        'osr/accuracy': 95.0
    })
    lines = table.splitlines()
    assert lines[0] == '| Score | AUROC | OSCR |'
    # Rows in the order of the metrics (the evaluator's), missing cells '-'.
    assert lines[2] == '| mls | 91.23 | - |'
    assert lines[3] == '| msp | 90.00 | 80.50 |'
    assert lines[-1] == 'osr/accuracy: 95.00'
    table = format_osr_table({'mls/auroc': 90.0}, std={'mls/auroc': 1.5})
    assert '| mls | 90.00 ± 1.50 |' in table


def test_ood_keys_and_table():
    assert split_ood_subset('osr/ood=tin/mls/auroc') == ('ood=tin',
                                                         'osr/mls/auroc')
    assert split_ood_subset('val/osr/group=far/knn/fpr95_ood_pos') == (
        'group=far', 'val/osr/knn/fpr95_ood_pos')
    assert split_ood_subset('osr/mls/auroc') == (None, 'osr/mls/auroc')
    assert split_ood_subset('osr/ood=tin/accuracy') == (
        None, 'osr/ood=tin/accuracy')
    # Per-source keys are not keys of the overall table.
    assert split_metric_key('osr/ood=tin/mls/auroc') == (
        None, 'osr/ood=tin/mls/auroc')
    table = format_osr_table({
        'osr/mls/auroc': 80.0,
        'osr/ood=tin/mls/auroc': 70.0,
        'osr/ood=mnist/mls/auroc': 90.0,
        'osr/group=all/mls/auroc': 80.0,
        'osr/ood=tin/knn/auroc': 60.0,
        'osr/ood=tin/knn/openood_fpr95': 50.0,
        'osr/accuracy': 95.0,
    })
    lines = table.splitlines()
    assert lines[0] == '| Score | OOD | AUROC | FPR@95 (OpenOOD) |'
    # Score by score: each source, each group, then all sources.
    assert lines[2:7] == [
        '| mls | tin | 70.00 | - |',
        '| mls | mnist | 90.00 | - |',
        '| mls | all (mean) | 80.00 | - |',
        '| mls | all | 80.00 | - |',
        '| knn | tin | 60.00 | 50.00 |',
    ]
    assert lines[-1] == 'osr/accuracy: 95.00'


def test_plots_show_every_source(tmp_path):
    metrics, per_sample = fake_evaluation()
    is_known = per_sample['is_known']
    sources = np.where(is_known, '',
                       np.where(np.arange(is_known.size) % 2, 'a', 'b'))
    plain = plot_osr_curves(per_sample, str(tmp_path / 'plain'))
    per_sample['ood_source'] = sources
    paths = plot_osr_curves(per_sample, str(tmp_path / 'ood'))
    # ROC and OSCR: one panel per score (msp, mls), one curve per source,
    # instead of one panel for all scores.
    for i in (0, 2):
        assert imread(paths[i]).shape[1] > 1.5 * imread(plain[i]).shape[1]
    assert paths[1].endswith('score_hist.png')


def test_json_round_trip_keeps_nan(tmp_path):
    path = str(tmp_path / 'm.json')
    save_osr_metrics({'a/auroc': float('nan'), 'b': np.float64(2.5)}, path)
    with open(path) as f:
        assert json.load(f) == {'a/auroc': None, 'b': 2.5}
    loaded = load_osr_metrics(path)
    assert np.isnan(loaded['a/auroc']) and loaded['b'] == 2.5


def test_write_osr_report(tmp_path):
    metrics, per_sample = fake_evaluation()
    written = write_osr_report(
        metrics,
        per_sample,
        out_dir=str(tmp_path / 'work'),
        npz_path=str(tmp_path / 'out' / 'scores.npz'),
        show_dir=str(tmp_path / 'show'))
    assert load_osr_metrics(written['json']) == pytest.approx(metrics)
    with open(written['table']) as f:
        assert f.read().strip() == format_osr_table(metrics)
    saved = np.load(written['per_sample'])
    assert set(saved.files) == set(per_sample)
    np.testing.assert_array_equal(saved['score_mls'], per_sample['score_mls'])
    for name in ('roc', 'score_hist', 'oscr'):
        with open(written[name], 'rb') as f:
            assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    with pytest.raises(ValueError, match='per_sample=None'):
        write_osr_report(metrics, None, str(tmp_path), show_dir='x')


def test_summarize_osr_tool(tmp_path, capsys):
    tool = load_tool('summarize_osr')
    runs = [fake_evaluation(seed)[0] for seed in range(3)]
    for i, run in enumerate(runs):
        # The tool also finds the file in a sub folder (a timestamp dir).
        folder = tmp_path / f'split{i}' / ('2024' if i == 2 else '')
        os.makedirs(folder, exist_ok=True)
        save_osr_metrics(run, str(folder / METRICS_FILENAME))
    csv_path = str(tmp_path / 'summary.csv')
    tool.main([str(tmp_path / f'split{i}') for i in range(3)] +
              ['--csv', csv_path])

    values = np.array([run['osr/mls/auroc'] for run in runs])
    mean, std = values.mean(), values.std(ddof=1)
    output = capsys.readouterr().out
    assert 'over 3 runs' in output
    assert f'| mls | {mean:.2f} ± {std:.2f} |' in output
    with open(csv_path) as f:
        rows = {row['key']: row for row in csv.DictReader(f)}
    assert rows['osr/mls/auroc']['score'] == 'mls'
    assert rows['osr/mls/auroc']['metric'] == 'auroc'
    assert float(rows['osr/mls/auroc']['mean']) == pytest.approx(mean)
    assert float(rows['osr/mls/auroc']['std']) == pytest.approx(std)
    assert rows['osr/accuracy']['n'] == '3'
    with pytest.raises(FileNotFoundError, match='no osr_metrics.json'):
        tool.main([str(tmp_path / 'missing')])


def test_plot_legends_carry_auroc_and_oscr(tmp_path, monkeypatch):
    from matplotlib.figure import Figure
    figures = {}
    save = Figure.savefig

    def recording_savefig(fig, path, *args, **kwargs):
        figures[osp.basename(path)] = fig
        return save(fig, path, *args, **kwargs)

    monkeypatch.setattr(Figure, 'savefig', recording_savefig)
    metrics, per_sample = fake_evaluation()
    plot_osr_curves(per_sample, str(tmp_path))

    def legend(name):
        return [t.get_text() for t in
                figures[name].axes[0].get_legend().get_texts()]

    assert legend('roc.png') == [
        f"{s} (AUROC {metrics[f'osr/{s}/auroc']:.2f})" for s in ('msp', 'mls')
    ]
    assert legend('oscr.png') == [
        f"{s} (OSCR {metrics[f'osr/{s}/oscr']:.2f})" for s in ('msp', 'mls')
    ]
    for ax in figures['score_hist.png'].axes:
        assert ax.get_xlabel() == 'score (higher = more known)'
        assert ax.get_ylabel() == 'density'


def test_keys_are_unambiguous():
    # A prefix that starts like an OOD source is a prefix (it read as a
    # source named 'eval' before).
    assert split_ood_subset('ood_eval/mls/auroc') == (None,
                                                      'ood_eval/mls/auroc')
    assert split_metric_key('ood_eval/mls/auroc') == ('mls', 'auroc')
    assert parse_metric_key('ood_eval/ood=tin/mls/auroc') == MetricKey(
        'ood_eval', 'ood=tin', 'mls', 'auroc')
    assert parse_metric_key('a/group_x/mls/auroc') == MetricKey(
        'a/group_x', None, 'mls', 'auroc')
    # A score nobody registered is parsed by name when prefixed.
    assert split_metric_key('osr/my_detector/auroc') == ('my_detector',
                                                         'auroc')
    assert split_metric_key('osr/accuracy') == (None, 'osr/accuracy')
    # Build and parse are inverse.
    for args in [('mls', 'auroc', None, None, 'osr'),
                 ('react', 'oscr', 'tin', None, 'ood_eval'),
                 ('vim', 'fpr95_ood_pos', None, 'near', 'val/osr')]:
        key = build_metric_key(*args)
        parsed = parse_metric_key(key)
        assert (parsed.score, parsed.metric, parsed.source, parsed.group,
                parsed.prefix) == args
    with pytest.raises(ValueError, match="OOD source 'a=b' cannot be used"):
        build_metric_key('mls', 'auroc', source='a=b')
    with pytest.raises(ValueError, match="prefix 'x=1' cannot be used"):
        OSRMetric(prefix='x=1')


def test_table_notes_that_accuracy_is_per_score():
    table = format_osr_table({'osr/class_knn/accuracy': 90.0,
                              'osr/mls/accuracy': 80.0})
    assert ACCURACY_NOTE in table
    assert 'nearest class for class_knn' in ACCURACY_NOTE
    assert ACCURACY_NOTE not in format_osr_table({'osr/mls/auroc': 1.0})
