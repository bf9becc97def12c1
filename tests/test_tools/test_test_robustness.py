"""End-to-end checks of tools/test_robustness.py on the digits config,
in-process, with a tiny random-weight model and a few test samples."""
import csv
import itertools
import json
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from helpers import REPO, load_tool
from mmengine.config import Config
from mmpretrain.registry import MODELS

import gradmix_plugin  # noqa: F401  (registers the plugin)
from gradmix_plugin.datasets import CIFAR10C
from gradmix_plugin.datasets.digits import load_digits_arrays

CONFIG = osp.join(REPO, 'configs', 'gradmix_resnet18_digits.py')
# A ResNet-18 of width 4 (32-d features, 16-d embeddings).
TINY = {
    'model.backbone.stem_channels': 4,
    'model.backbone.base_channels': 4,
    'model.projector.in_channels': 32,
    'model.projector.hid_channels': 32,
    'model.projector.out_channels': 16,
}
CELLS = ['--corruptions', 'fog', 'gaussian_noise', '--severities', '1', '4']
NUM_SAMPLES = 12
RUN_IDS = itertools.count()


TOOL = load_tool('test_robustness')


def make_checkpoint(path, seed, options=TINY):
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict(options)
    torch.manual_seed(seed)
    model = MODELS.build(cfg.model)
    torch.save(dict(state_dict=model.state_dict(), meta={}), path)
    return str(path)


def run_tool(monkeypatch, checkpoint, work_dir, *extra, options=TINY):
    # One Runner per call in this process: a name of its own for its
    # logger and visualizer (mmengine names them by the second otherwise).
    options = dict(options, experiment_name=f'robustness_{next(RUN_IDS)}')
    argv = [
        'test_robustness.py', CONFIG, checkpoint, *CELLS, '--max-samples',
        str(NUM_SAMPLES), '--work-dir',
        str(work_dir), *extra, '--cfg-options'
    ] + [f'{k}={v}' for k, v in options.items()]
    monkeypatch.setattr(sys, 'argv', argv)
    TOOL.main()
    with open(osp.join(work_dir, TOOL.RESULTS_FILE)) as file:
        return json.load(file)


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """On the fly, rerun, cached, and a second model with a baseline."""
    root = tmp_path_factory.mktemp('robustness')
    monkeypatch = pytest.MonkeyPatch()
    ckpt = make_checkpoint(root / 'a.pth', seed=0)
    other = make_checkpoint(root / 'b.pth', seed=1)
    out = dict(root=root, ckpt=ckpt)
    out['fly'] = run_tool(monkeypatch, ckpt, root / 'fly')
    out['rerun'] = run_tool(monkeypatch, ckpt, root / 'fly')
    out['cached'] = run_tool(monkeypatch, ckpt, root / 'cached',
                             '--cache-dir', str(root / 'cache'))
    out['other'] = run_tool(monkeypatch, other, root / 'other',
                            '--cache-dir', str(root / 'cache'), '--baseline',
                            str(root / 'fly' / TOOL.RESULTS_FILE))
    monkeypatch.undo()
    return out


def cell_values(results, metric='class_knn_accuracy'):
    return {(c, s): cell[metric]
            for c, by_severity in results['cells'].items()
            for s, cell in by_severity.items()}


@pytest.mark.slow
def test_every_cell_is_evaluated_and_written(runs):
    fly = runs['fly']
    assert fly['source'] == 'imagecorruptions'
    assert fly['num_samples'] == NUM_SAMPLES
    assert set(cell_values(fly)) == {(c, s) for c in ('fog', 'gaussian_noise')
                                     for s in ('1', '4')}
    for cell in fly['cells']['fog'].values():
        # No classifier head in this model: no head accuracy.
        assert cell['accuracy'] is None
        assert 0 <= cell['class_knn_accuracy'] <= 100
        assert cell['num_samples'] == NUM_SAMPLES
    assert fly['clean']['class_knn_accuracy'] is not None
    summary = fly['summary']['class_knn_accuracy']
    values = np.array(list(cell_values(fly).values()))
    assert summary['mean_corruption_accuracy'] == pytest.approx(
        values.mean())
    assert summary['per_corruption']['fog'] == pytest.approx(
        np.mean([fly['cells']['fog'][s]['class_knn_accuracy']
                 for s in ('1', '4')]))
    assert 'accuracy' not in fly['summary']
    assert fly['provenance']['checkpoint_sha256']
    work_dir = runs['root'] / 'fly'
    assert (work_dir / TOOL.HEATMAP_FILE).stat().st_size > 0
    with open(work_dir / TOOL.CSV_FILE) as file:
        rows = list(csv.reader(file))
    assert rows[0] == ['metric', 'corruption', 'severity_1', 'severity_4',
                       'mean', 'ce']
    assert [r[1] for r in rows[1:]] == ['fog', 'gaussian_noise', 'mean']


@pytest.mark.slow
def test_rerun_skips_finished_cells(runs):
    # A recomputed cell would have a new run time.
    assert runs['rerun']['cells'] == runs['fly']['cells']
    assert runs['rerun']['clean'] == runs['fly']['clean']


@pytest.mark.slow
def test_cache_gives_the_on_the_fly_numbers_and_the_cifar_c_layout(runs):
    assert cell_values(runs['cached']) == cell_values(runs['fly'])
    assert all(cell['from_cache']
               for cell in runs['cached']['cells']['fog'].values())
    cache = runs['root'] / 'cache'
    images = np.load(cache / 'fog.npy')
    labels = np.load(cache / 'labels.npy')
    assert images.shape == (5 * NUM_SAMPLES, 32, 32, 3)
    assert images.dtype == np.uint8
    assert labels.shape == (5 * NUM_SAMPLES, )
    dataset = CIFAR10C(str(cache), 'fog', 4)
    assert len(dataset) == NUM_SAMPLES
    # Severity 4 is not severity 1.
    assert not np.array_equal(images[:NUM_SAMPLES],
                              images[3 * NUM_SAMPLES:4 * NUM_SAMPLES])


@pytest.mark.slow
def test_baseline_corruption_errors(runs):
    other, base = runs['other'], runs['fly']
    ce = other['baseline']['class_knn_accuracy']
    for corruption in ('fog', 'gaussian_noise'):
        errors = sum(100 - other['cells'][corruption][s]['class_knn_accuracy']
                     for s in ('1', '4'))
        base_errors = sum(
            100 - base['cells'][corruption][s]['class_knn_accuracy']
            for s in ('1', '4'))
        assert ce['ce'][corruption] == pytest.approx(errors / base_errors)
    assert ce['mce'] == pytest.approx(np.mean(list(ce['ce'].values())))
    assert cell_values(other) != cell_values(base)


@pytest.mark.slow
def test_refuses_results_of_another_checkpoint(runs, tmp_path,
                                               monkeypatch):
    other = make_checkpoint(tmp_path / 'c.pth', seed=2)
    with pytest.raises(ValueError, match='checkpoint_sha256'):
        run_tool(monkeypatch, other, runs['root'] / 'fly')


@pytest.mark.slow
def test_refuses_a_checkpoint_that_does_not_fit(tmp_path, monkeypatch):
    wide = dict(TINY, **{'model.backbone.base_channels': 8,
                         'model.projector.in_channels': 64})
    ckpt = make_checkpoint(tmp_path / 'wide.pth', seed=0, options=wide)
    with pytest.raises(ValueError, match='does not fit'):
        run_tool(monkeypatch, ckpt, tmp_path / 'wd')


@pytest.mark.parametrize('extra, error, match', [
    (['--corruptions', 'rain'], ValueError, "'rain'.*gaussian_noise"),
    (['--severities', '6'], ValueError, 'severity 6 '),
    (['--c-root', 'x', '--cache-dir', 'y'], ValueError, 'not both'),
    (['--c-root', '/nonexistent'], FileNotFoundError, 'fog.npy'),
    (['--baseline', '/nonexistent.json'], FileNotFoundError,
     'nonexistent.json'),
])
def test_bad_options_fail_before_any_work(extra, error, match, monkeypatch):
    monkeypatch.setattr(sys, 'argv', [
        'test_robustness.py', CONFIG, 'unused.pth', *CELLS, *extra])
    with pytest.raises(error, match=match):
        TOOL.parse_args()


@pytest.mark.slow
def test_c_root_reads_cifar_c_files(tmp_path, monkeypatch, runs):
    # Five "severities" that are the clean digits test images: every cell
    # must give the clean accuracy.
    images, labels, _, test_indices = load_digits_arrays()
    np.save(tmp_path / 'fog.npy', np.tile(images[test_indices], (5, 1, 1, 1)))
    np.save(tmp_path / 'gaussian_noise.npy',
            np.tile(images[test_indices], (5, 1, 1, 1)))
    np.save(tmp_path / 'labels.npy', np.tile(labels[test_indices], 5))
    results = run_tool(monkeypatch, runs['ckpt'], tmp_path / 'wd',
                       '--c-root', str(tmp_path))
    assert results['source'] == 'cifar_c_files'
    assert results['corruption_seed'] is None
    clean = runs['fly']['clean']['class_knn_accuracy']
    assert set(cell_values(results).values()) == {clean}

    # Files of another test set are refused.
    np.save(tmp_path / 'fog.npy', np.tile(images[:30], (5, 1, 1, 1)))
    np.save(tmp_path / 'labels.npy', np.tile(labels[:30], 5))
    with pytest.raises(ValueError, match='another test set'):
        run_tool(monkeypatch, runs['ckpt'], tmp_path / 'wd2', '--c-root',
                 str(tmp_path))


@pytest.mark.slow
def test_refuses_a_cache_of_other_settings(runs, tmp_path, monkeypatch):
    with pytest.raises(ValueError, match='differing: corruption_seed'):
        run_tool(monkeypatch, runs['ckpt'], tmp_path / 'wd', '--cache-dir',
                 str(runs['root'] / 'cache'), '--seed', '1')


def test_cache_check_ignores_provenance_entries_added_later():
    recorded = dict(num_samples=3, data=dict(split=0))
    assert TOOL._differing_keys(
        recorded, dict(num_samples=3, data=dict(split=0, new=None))) == []
    assert TOOL._differing_keys(
        recorded, dict(num_samples=4, data=dict(split=1))) == [
            'data.split', 'num_samples']
