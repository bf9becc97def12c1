"""End to end on the embedded digits: train, build the detector with the
held-out known split, classify image files with tools/infer.py, and
compare with tools/test.py."""
import csv
import json
import os.path as osp
import sys

import mmcv
import numpy as np
import pytest
import torch
from helpers import run_tool

from gradmix_plugin.datasets import OSRDataset

CONFIG = 'configs/gradmix_resnet18_digits.py'
PY = sys.executable


def _write_images(dataset, folder):
    """The dataset's in-memory RGB images as lossless PNG files, named in
    dataset order (the tools read them back as the same arrays: the
    digits are grey)."""
    for i in range(len(dataset)):
        mmcv.imwrite(
            dataset.get_data_info(i)['img'][..., ::-1],
            osp.join(folder, f'{i:04d}.png'))
    return str(folder)


def _rows(path):
    with open(path) as file:
        return list(csv.DictReader(file))


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """One epoch on the known training images minus the held-out split
    (the opt-in 'known_train'), the detector, the image folders."""
    root = tmp_path_factory.mktemp('infer_e2e')
    work = str(root / 'work')
    run_tool([
        PY, 'tools/train.py', CONFIG, '--work-dir', work, '--cfg-options',
        'train_cfg.max_epochs=1', 'train_dataloader.dataset.subset='
        'known_train'
    ])
    ckpt = osp.join(work, 'epoch_1.pth')
    detector = str(root / 'detector.pth')
    run_tool([
        PY, 'tools/build_detector.py', CONFIG, ckpt, '--out', detector,
        '--tpr', '0.95', '--holdout', '0.1', '--seed', '0'
    ])
    holdout = OSRDataset(
        dataset=dict(type='DigitsDataset', split='train'),
        protocol='digits',
        subset='known_holdout',
        holdout=0.1,
        seed=0)
    test = OSRDataset(
        dataset=dict(type='DigitsDataset', split='test'),
        protocol='digits',
        subset='open')
    (root / 'holdout').mkdir()
    (root / 'test').mkdir()
    return dict(
        root=root,
        ckpt=ckpt,
        detector=detector,
        holdout=_write_images(holdout, root / 'holdout'),
        test=_write_images(test, root / 'test'),
        test_labels=test.get_gt_labels())


@pytest.mark.slow
def test_rejection_rates_and_test_tool_agreement(trained):
    root = trained['root']
    state = torch.load(trained['detector'], weights_only=True)
    assert state['threshold_source'] == 'known_holdout'
    assert state['provenance']['bank']['holdout'] == 0.1
    threshold = state['threshold']

    # The held-out known images, as files: the rejection rate is the one
    # the detector recorded, within the binomial error of the target.
    run_tool([
        PY, 'tools/infer.py', CONFIG, trained['ckpt'], '--detector',
        trained['detector'], trained['holdout'], '--out',
        str(root / 'holdout.csv')
    ])
    rows = _rows(root / 'holdout.csv')
    accepted = np.mean([r['is_unknown'] == 'False' for r in rows])
    assert accepted == pytest.approx(state['achieved_tpr'])
    assert abs(accepted - 0.95) <= 3 * np.sqrt(0.95 * 0.05 / len(rows))

    # Known and unknown test images: new known images are accepted at the
    # target rate (binomial errors of both samples).
    run_tool([
        PY, 'tools/infer.py', CONFIG, trained['ckpt'], '--detector',
        trained['detector'], trained['test'], '--out',
        str(root / 'test.json'), '--show-dir',
        str(root / 'shown')
    ])
    with open(root / 'test.json') as file:
        preds = json.load(file)
    labels = trained['test_labels']
    assert len(preds) == labels.size
    known = labels >= 0
    unknown_flags = np.array([p['is_unknown'] for p in preds])
    rate = np.mean(~unknown_flags[known])
    sigma = np.sqrt(0.95 * 0.05 * (1 / known.sum() + 1 / len(rows)))
    assert abs(rate - 0.95) <= 3 * sigma
    assert len(list((root / 'shown').iterdir())) == labels.size
    assert {p['decision'] for p in preds if p['is_unknown']} <= {'unknown'}

    # tools/test.py with the detector's bank (the held-out images out of
    # it): the same scores, classes and, at the same threshold, decisions.
    run_tool([
        PY, 'tools/test.py', CONFIG, trained['ckpt'], '--work-dir',
        str(root / 'test_work'), '--out',
        str(root / 'scores.npz'), '--cfg-options',
        'custom_hooks.0.dataloader.dataset.subset=known_train'
    ])
    scores = np.load(root / 'scores.npz')
    assert scores['img_path'].shape == labels.shape  # '' in memory
    np.testing.assert_allclose([p['osr_score'] for p in preds],
                               scores['score_class_knn'], rtol=1e-6)
    np.testing.assert_array_equal([p['pred_label'] for p in preds],
                                  scores['pred_label'])
    np.testing.assert_array_equal(unknown_flags,
                                  scores['score_class_knn'] < threshold)


@pytest.mark.slow
def test_infer_tool_refuses_bad_input(trained, tmp_path):
    base = [
        PY, 'tools/infer.py', CONFIG, trained['ckpt'], '--detector',
        trained['detector']
    ]
    result = run_tool(
        base + [trained['holdout'], '--out',
                str(tmp_path / 'p.txt')], check=False)
    assert result.returncode == 2
    assert '--out must end in .csv or .json' in result.stderr
    result = run_tool(
        base + [trained['holdout'], '--out',
                str(tmp_path / 'p.csv'), '--score', 'knn'], check=False)
    assert result.returncode != 0
    assert "uses the score 'class_knn', not the requested 'knn'" in \
        result.stderr
    (tmp_path / 'empty').mkdir()
    result = run_tool(
        base + [str(tmp_path / 'empty'), '--out',
                str(tmp_path / 'p.csv')], check=False)
    assert result.returncode != 0
    assert 'holds no image file' in result.stderr
