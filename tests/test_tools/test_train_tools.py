"""End-to-end checks of tools/train.py and tools/dist_train.sh on CPU."""
import os
import os.path as osp
import subprocess
import sys

import pytest
import torch
from helpers import ENV, REPO

import gradmix_plugin  # noqa: F401  (registers the plugin)
from gradmix_plugin.utils import load_from_local_safely

CONFIG = """
_base_ = [
    'mmpretrain::_base_/models/resnet18_cifar.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['gradmix_plugin'], allow_failed_imports=False)
model = dict(
    backbone=dict(stem_channels=8, base_channels=8),
    head=dict(num_classes=2, in_channels=64, topk=(1, )))
pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=16, crop_ratio_range=(0.5, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=4,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='CustomDataset', data_root='{data_root}',
                 pipeline=pipeline))
val_dataloader = None
val_evaluator = None
val_cfg = None
optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9))
param_scheduler = dict(
    type='CosineAnnealingLR', by_epoch=True, T_max=3, begin=0, end=3)
train_cfg = dict(by_epoch=True, max_epochs={max_epochs})
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1))
custom_hooks = {custom_hooks}
randomness = dict(seed=0)
"""


def write_config(tmp_path, png_root, max_epochs, rng_hook=True):
    path = tmp_path / f'tiny_{max_epochs}_{rng_hook}.py'
    hooks = [dict(type='RNGStateHook')] if rng_hook else []
    path.write_text(
        CONFIG.format(
            data_root=png_root, max_epochs=max_epochs, custom_hooks=hooks))
    return str(path)


def run(args, env=None):
    result = subprocess.run(
        args, cwd=REPO, env=env or ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[
        -3000:]
    return result.stdout + result.stderr


@pytest.mark.slow
def test_custom_imports_registers_plugin_in_fresh_process(tmp_path,
                                                          png_root):
    config = write_config(tmp_path, png_root, 1)
    code = ('from mmengine.config import Config; '
            f'cfg = Config.fromfile({config!r}); '
            'from mmpretrain.registry import DATASETS, METRICS, MODELS; '
            "print(cfg.model.backbone.type, "
            "MODELS.get('SupConLoss').__module__, "
            "METRICS.get('OSRMetric').__module__, "
            "DATASETS.get('OSRDataset').__module__)")
    out = run([sys.executable, '-c', code])
    # `mmpretrain::` base resolved, and the plugin registered by the
    # config's custom_imports alone.
    assert out.split()[0] == 'ResNet_CIFAR'
    assert out.count('gradmix_plugin.') == 3


def train(tmp_path, png_root, max_epochs, work_dir, *extra, rng_hook=True):
    out = run([
        sys.executable, 'tools/train.py',
        write_config(tmp_path, png_root, max_epochs, rng_hook),
        '--work-dir', work_dir, *extra
    ])
    checkpoint = load_from_local_safely(
        osp.join(work_dir, f'epoch_{max_epochs}.pth'))
    return out, checkpoint


def same_weights(a, b):
    return all(
        torch.equal(a['state_dict'][k], b['state_dict'][k])
        for k in a['state_dict'])


@pytest.mark.slow
@pytest.mark.parametrize('rng_hook', [True, False])
def test_resume_is_exact_with_rng_state_hook(tmp_path, png_root, rng_hook):
    # The cosine schedule has a fixed T_max, so stopping after epoch 2 and
    # resuming to epoch 3 must reproduce the uninterrupted 3-epoch run.
    _, straight = train(
        tmp_path, png_root, 3, str(tmp_path / 'a'), rng_hook=rng_hook)
    _, first = train(
        tmp_path, png_root, 2, str(tmp_path / 'b'), rng_hook=rng_hook)
    assert first['meta']['epoch'] == 2
    assert ('rng_state' in first) == rng_hook
    out, resumed = train(
        tmp_path,
        png_root,
        3,
        str(tmp_path / 'b'),
        '--resume',
        rng_hook=rng_hook)
    assert 'resumed epoch: 2' in out
    assert resumed['meta']['iter'] == straight['meta']['iter'] == 12
    # Without the hook, the augmentation draws of epoch 3 differ.
    assert same_weights(straight, resumed) == rng_hook


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path, png_root):
    work_dir = str(tmp_path / 'dist')
    out = run([
        'bash', 'tools/dist_train.sh',
        write_config(tmp_path, png_root, 1), '2', '--work-dir', work_dir
    ],
              env=dict(ENV, PORT=str(29500 + os.getpid() % 1000)))
    assert 'initialised gloo process group: rank 0 of 2' in out
    checkpoint = load_from_local_safely(osp.join(work_dir, 'epoch_1.pth'))
    # 16 images, batch 4 per process, 2 processes: 2 iterations per epoch.
    assert checkpoint['meta']['iter'] == 2
