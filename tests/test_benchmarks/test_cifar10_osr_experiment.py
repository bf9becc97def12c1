"""End-to-end test of ``benchmarks/cifar10_osr_experiment.py`` on a tiny
CIFAR-10-like folder tree (10 classes of random 32x32 images)."""
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import ENV, REPO
from mmengine.config import Config
from PIL import Image

ARMS = ('ce', 'gradmix')


@pytest.fixture(scope='module')
def cifar_root(tmp_path_factory) -> str:
    """``{train,test}/<class>/*.png``: 4 train and 2 test images a class."""
    root = tmp_path_factory.mktemp('cifar10')
    rng = np.random.default_rng(0)
    for split, count in (('train', 4), ('test', 2)):
        for cls in range(10):
            folder = root / split / f'class{cls}'
            os.makedirs(folder)
            for i in range(count):
                img = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(img).save(folder / f'{i}.png')
    return str(root)


def run_experiment(data_root: str, work_root: str) -> None:
    completed = subprocess.run(
        [
            sys.executable, 'benchmarks/cifar10_osr_experiment.py',
            '--data-root', data_root, '--work-root', work_root, '--arms',
            *ARMS, '--epochs', '1', '--width', '4', '--batch-size', '8',
            '--num-workers', '0', '--final-lr-ratio', '0.1'
        ],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]


@pytest.mark.slow
def test_experiment_trains_tests_and_resumes(cifar_root, tmp_path):
    work_root = str(tmp_path / 'work')
    run_experiment(cifar_root, work_root)

    with open(osp.join(work_root, 'summary.json')) as file:
        summary = json.load(file)
    assert summary['settings']['epochs'] == 1
    assert summary['machine']['torch'] == torch.__version__
    assert set(summary['results']) == {f'{arm} (seed 0)' for arm in ARMS}
    for metrics in summary['results'].values():
        for score in ('class_knn', 'mls'):
            assert 0 <= metrics[f'osr/{score}/auroc'] <= 100
            assert 0 <= metrics[f'osr/{score}/oscr'] <= 100
    with open(osp.join(work_root, 'summary.md')) as file:
        assert len(file.read().strip().splitlines()) == 2 + 2 * len(ARMS)
    assert osp.getsize(osp.join(work_root, 'roc.png')) > 0

    for arm in ARMS:
        work_dir = osp.join(work_root, f'{arm}_seed0')
        cfg = Config.fromfile(osp.join(work_dir, 'experiment_config.py'))
        assert cfg.model.backbone.base_channels == 4
        assert cfg.train_cfg.max_epochs == 1
        lr = cfg.optim_wrapper.optimizer.lr
        assert cfg.param_scheduler.eta_min == pytest.approx(lr * 0.1)
        assert tuple(cfg.test_evaluator.scores) == ('class_knn', 'mls')
        assert osp.exists(osp.join(work_dir, 'epoch_1.pth'))

    # A second call finds every arm finished: no training or testing again.
    logs = {
        arm: osp.getmtime(osp.join(work_root, f'{arm}_seed0',
                                   'experiment.log'))
        for arm in ARMS
    }
    run_experiment(cifar_root, work_root)
    for arm, mtime in logs.items():
        assert osp.getmtime(
            osp.join(work_root, f'{arm}_seed0', 'experiment.log')) == mtime
    with open(osp.join(work_root, 'summary.json')) as file:
        assert json.load(file)['results'] == summary['results']
