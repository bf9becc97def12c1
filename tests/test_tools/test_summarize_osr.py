"""tools/summarize_osr.py: refusal of duplicate and mixed runs, the
summaries (markdown, CSV, LaTeX, plot) against numpy."""
import csv
import os.path as osp

import numpy as np
import pytest
from helpers import load_tool

from gradmix_plugin.evaluation import METRICS_FILENAME, save_osr_metrics

summarize_osr = load_tool('summarize_osr')


def provenance(split, seed, **changes):
    """A record as tools/test.py writes it, ``changes`` applied."""
    record = dict(
        config='/configs/gradmix_resnet18_cifar10.py',
        work_dir=f'/work/split{split}_seed{seed}',
        dataset_type='CustomDataset',
        data_root='data/cifar10',
        protocol='cifar10',
        split=split,
        known_classes=[0, 1],
        unknown_classes=[2],
        checkpoint=f'/work/split{split}_seed{seed}/epoch_1.pth',
        checkpoint_sha256=f'{split:02d}{seed:02d}' * 16,
        seed=seed,
        versions=dict(torch='2'),
        world_size=1)
    record.update(changes)
    return record


def write_run(root, name, auroc, record=None):
    """A work dir with a metrics file (with ``record`` as provenance)."""
    folder = root / name
    folder.mkdir()
    metrics = {
        'osr/class_knn/auroc': auroc,
        'osr/class_knn/oscr': auroc - 10,
        'osr/knn/auroc': auroc - 1,
        'osr/accuracy': 90.0
    }
    save_osr_metrics(metrics, str(folder / METRICS_FILENAME), record)
    return str(folder)


def runs_of(tmp_path, splits=(0, 1, 2), seeds=(0, 1)):
    dirs, aurocs = [], {}
    for split in splits:
        for seed in seeds:
            auroc = 80.0 + 3 * split + seed + 0.1 * split * seed
            dirs.append(
                write_run(tmp_path, f's{split}_{seed}', auroc,
                          provenance(split, seed)))
            aurocs[(split, seed)] = auroc
    return dirs, aurocs


def test_summary_tables_against_numpy(tmp_path, capsys):
    dirs, aurocs = runs_of(tmp_path)
    paths = {kind: str(tmp_path / f'out.{kind}') for kind in
             ('csv', 'tex', 'png')}
    summarize_osr.main(dirs + ['--csv', paths['csv'], '--latex',
                               paths['tex'], '--plot', paths['png']])
    out = capsys.readouterr().out
    values = np.array(list(aurocs.values()))
    mean, std = values.mean(), values.std(ddof=1)
    assert 'over 6 runs' in out
    assert f'| class_knn | {mean:.2f} ± {std:.2f} |' in out
    assert '6 runs, splits [0, 1, 2], seeds [0, 1]:' in out
    assert f'split 2, seed 1: {dirs[-1]}/{METRICS_FILENAME}' in out
    split1 = np.array([aurocs[(1, 0)], aurocs[(1, 1)]])
    row = (f'| split 1 | class_knn | {split1.mean():.2f} ± '
           f'{split1.std(ddof=1):.2f} |')
    assert row in out

    with open(paths['csv']) as f:
        rows = {(r['group'], r['key']): r for r in csv.DictReader(f)}
    overall = rows[('all', 'osr/class_knn/auroc')]
    assert float(overall['mean']) == pytest.approx(mean)
    assert float(overall['std']) == pytest.approx(std)
    assert overall['n'] == '6'
    assert float(rows[('split 1', 'osr/class_knn/auroc')]['std']) == \
        pytest.approx(split1.std(ddof=1))
    assert rows[('split 0', 'osr/accuracy')]['score'] == ''

    with open(paths['tex']) as f:
        tex = f.read()
    assert tex.startswith('\\begin{tabular}{llrr}')
    assert f'all & class\\_knn & {mean:.2f} $\\pm$ {std:.2f}' in tex
    with open(paths['png'], 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'


@pytest.mark.parametrize(
    'change, message',
    [(dict(protocol='svhn'), "mix protocol values \\('cifar10'"),
     (dict(dataset_type='CIFAR10'), 'mix dataset_type values'),
     (dict(config='/other/ce_resnet18_cifar10.py'),
      "mix config_name values .*'ce_resnet18_cifar10'"),
     (dict(checkpoint_sha256='0000' * 16),
      "share the checkpoint_sha256 '0000"),
     (dict(split=0, seed=0), 'share the \\(split, seed\\) \\(0, 0\\)')])
def test_refuses_mixed_and_duplicate_runs(tmp_path, change, message):
    first = write_run(tmp_path, 'a', 80.0,
                      provenance(0, 0, checkpoint_sha256='0000' * 16))
    second = write_run(tmp_path, 'b', 81.0, dict(provenance(1, 0), **change))
    with pytest.raises(summarize_osr.SummaryError, match=message) as error:
        summarize_osr.main([first, second])
    # Both offending files are named.
    assert first in str(error.value) and second in str(error.value)


def test_same_run_twice_is_refused_with_or_without_provenance(tmp_path):
    with_record = write_run(tmp_path, 'a', 80.0, provenance(0, 0))
    legacy = write_run(tmp_path, 'b', 80.0)
    for run in (with_record, legacy):
        file = osp.join(run, METRICS_FILENAME)
        with pytest.raises(summarize_osr.SummaryError,
                           match='are the same run'):
            summarize_osr.main([run, file])


def test_legacy_files_alone_warn_and_are_not_mixed(tmp_path, capsys):
    legacy = [write_run(tmp_path, f'l{i}', 80.0 + i) for i in range(2)]
    with pytest.warns(UserWarning, match='cannot be detected'):
        summarize_osr.main(legacy)
    out = capsys.readouterr().out
    assert '| class_knn | 80.50 ± 0.71 |' in out
    assert '2 runs, splits and seeds not recorded' in out
    recorded = write_run(tmp_path, 'r', 82.0, provenance(0, 0))
    with pytest.raises(summarize_osr.SummaryError,
                       match=f'{legacy[0]}.* have no provenance'):
        summarize_osr.main(legacy + [recorded])
