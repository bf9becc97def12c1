"""Tiny configs, data and runners shared by the reliability tests.

Training and testing go through ``tools/train.py`` / ``tools/test.py``:
in-process (``runpy``, same code path as the command line, without paying
the import time of a new interpreter) where one process suffices, and as
subprocesses (``torchrun`` via ``tools/dist_*.sh``, or a killed run) where
the test needs real processes.
"""
import copy
import glob
import json
import os
import os.path as osp
import runpy
import subprocess
import sys
from typing import Dict, List, Optional

import torch
from mmengine.config import Config

import gradmix_plugin  # noqa: F401  (registers; allow-lists checkpoints)
from gradmix_plugin.utils import free_port, load_from_local_safely

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
HERE = osp.dirname(osp.abspath(__file__))
RUNTIME = osp.join(REPO, 'configs', '_base_', 'default_runtime.py')
ENV = dict(
    os.environ,
    OMP_NUM_THREADS='1',
    MKL_NUM_THREADS='1',
    PYTHONPATH=os.pathsep.join(
        [HERE, REPO, os.environ.get('PYTHONPATH', '')]))

TINY_BACKBONE = dict(
    type='ResNet_CIFAR',
    depth=18,
    stem_channels=8,
    base_channels=8,
    num_stages=4,
    out_indices=(3, ),
    style='pytorch')
FEAT_DIM = 64  # 8 * base_channels
LAYERS = ['backbone.layer3', 'backbone.layer4']


def ce_gradmix_model(num_classes: int = 2, **gradmix) -> dict:
    """ImageClassifier + OSR head + GradMix (partner fill) batch augment."""
    gradmix_cfg = dict(
        type='GradMix', attribution_layers=LAYERS, fill='partner')
    gradmix_cfg.update(gradmix)
    return dict(
        type='ImageClassifier',
        backbone=TINY_BACKBONE,
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='OSRLinearClsHead',
            num_classes=num_classes,
            in_channels=FEAT_DIM,
            loss=dict(type='CrossEntropyLoss', use_soft=True),
            topk=(1, )),
        data_preprocessor=dict(
            type='OSRDataPreprocessor',
            num_classes=num_classes,
            mean=[127.5] * 3,
            std=[127.5] * 3,
            to_rgb=False),
        train_cfg=dict(augments=gradmix_cfg))


def contrastive_model(gradmix: Optional[dict] = None,
                      backbone: Optional[dict] = None) -> dict:
    """A narrow ContrastiveClassifier (64-d feats, 32-d embeds)."""
    return dict(
        type='ContrastiveClassifier',
        backbone=backbone or TINY_BACKBONE,
        neck=dict(type='GlobalAveragePooling'),
        projector=dict(
            type='ProjectionNeck',
            in_channels=FEAT_DIM,
            hid_channels=FEAT_DIM,
            out_channels=32),
        gamma=1.0,
        lambda_ssl=1.0,
        gradmix=gradmix,
        data_preprocessor=dict(
            type='OSRDataPreprocessor',
            mean=[77.9] * 3,
            std=[82.6] * 3,
            to_rgb=False))


def loader(dataset: dict, batch_size: int, shuffle: bool = True) -> dict:
    return dict(
        batch_size=batch_size,
        num_workers=0,
        persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=shuffle),
        dataset=dataset)


def digits(split: str, num: int, pipeline: list) -> dict:
    """The first ``num`` images of a DigitsDataset split."""
    return dict(
        type='DigitsDataset', split=split, indices=num, pipeline=pipeline)


def osr_digits(subset: str, split: str, num: int, pipeline: list,
               **osr) -> dict:
    """OSRDataset (protocol 'digits', split 0) of the first ``num``
    images of a DigitsDataset split."""
    cfg = dict(
        type='OSRDataset',
        protocol='digits',
        split=0,
        subset=subset,
        dataset=digits(split, num, pipeline))
    cfg.update(osr)
    return cfg


def two_views(view: list) -> list:
    return [
        dict(type='MultiView', num_views=2, transforms=[view]),
        dict(type='PackInputs')
    ]


RANDOM_VIEW = [
    dict(type='RandomResizedCrop', scale=32, crop_ratio_range=(0.5, 1.0)),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
]


def runtime(max_epochs: int, **cfg) -> dict:
    """Schedule, hooks and logging of the tiny runs: SGD, a cosine
    schedule with explicit ``begin``/``end`` (shared by a run stopped
    early and the run it is compared with), a checkpoint every epoch, a
    log line (raw values, no smoothing) every iteration."""
    base = dict(
        optim_wrapper=dict(
            optimizer=dict(type='SGD', lr=0.05, momentum=0.9)),
        param_scheduler=dict(
            type='CosineAnnealingLR', by_epoch=True, T_max=3, begin=0,
            end=3),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        val_dataloader=None,
        val_evaluator=None,
        val_cfg=None,
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=1),
            checkpoint=dict(type='CheckpointHook', interval=1)),
        log_processor=dict(window_size=1),
        randomness=dict(seed=0))
    base.update(cfg)
    return base


def write_config(path, drop_default_hooks=(), **cfg) -> str:
    """Dump the project runtime merged with ``cfg`` as a config file,
    without the ``default_hooks`` named in ``drop_default_hooks``."""
    config = Config.fromfile(RUNTIME)
    config.merge_from_dict(copy.deepcopy(cfg))
    for name in drop_default_hooks:
        config.default_hooks.pop(name)
    config.dump(str(path))
    return str(path)


def run_tool(tool: str, *args: str) -> None:
    """Run ``tools/<tool>.py`` with ``args`` in this process.

    Every run gets its own ``experiment_name`` (from its work dir and a
    counter) so that mmengine's logger and visualizer instances of one
    run are not reused by the next one in the same second.
    """
    run_tool.count = getattr(run_tool, 'count', 0) + 1
    name = f'reliability_{os.getpid()}_{run_tool.count}'
    argv = [osp.join(REPO, 'tools', f'{tool}.py'), *args]
    if '--cfg-options' in argv:
        argv.insert(argv.index('--cfg-options') + 1, f'experiment_name={name}')
    else:
        argv += ['--cfg-options', f'experiment_name={name}']
    old_argv, old_threads = sys.argv, torch.get_num_threads()
    sys.argv = argv
    # As many threads as the subprocess runs (ENV): CPU kernels reduce in
    # a thread-count dependent order, and runs are compared bit for bit.
    torch.set_num_threads(int(ENV['OMP_NUM_THREADS']))
    try:
        runpy.run_path(argv[0], run_name='__main__')
    finally:
        sys.argv = old_argv
        torch.set_num_threads(old_threads)


def run_subprocess(args: List[str], port: bool = False,
                   check: bool = True) -> subprocess.CompletedProcess:
    env = ENV
    if port:  # a free port for torchrun's rendezvous
        env = dict(ENV, PORT=str(free_port()))
    result = subprocess.run(
        args, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    if check:
        assert result.returncode == 0, (
            result.stdout[-3000:] + result.stderr[-3000:])
    return result


def load_checkpoint(path: str) -> dict:
    """Load with ``weights_only=True`` (and the allow-list of mmengine's
    globals) after checking the file's checksums."""
    return load_from_local_safely(path, map_location='cpu')


def same_weights(a: dict, b: dict) -> bool:
    assert a['state_dict'].keys() == b['state_dict'].keys()
    return all(
        torch.equal(a['state_dict'][k], b['state_dict'][k])
        for k in a['state_dict'])


def train_scalars(work_dir: str) -> Dict[int, dict]:
    """The logged training scalars of every run in ``work_dir``, by
    global step (a resumed run's steps follow the first run's)."""
    steps = {}
    for path in sorted(
            glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as file:
            for line in file:
                record = json.loads(line)
                if 'loss' in record:
                    steps[record['step']] = record
    return steps


