"""Check a machine before training: versions, devices, and PASS / FAIL for
what the plugin needs there.

Run it first on a new machine or cluster node::

    python tools/check_env.py [--device cuda:0]

It prints the versions (torch, mmengine, mmpretrain, the mmcv flavour,
faiss and whether it has GPU support), the devices, and one PASS / FAIL
line for each check: a GradMix training step in the contrastive and the CE
mode on the device, without and with mixed precision (fp16 with loss
scaling on CUDA, as ``--amp`` does; bf16 autocast on CPU), a faiss kNN
search on the device, and a 1-process distributed init / teardown with the
backend the tools pick (nccl on CUDA, gloo on CPU). The exit status is the
number of failed checks.
"""
import argparse
import contextlib
import os
import sys
import traceback
from typing import Callable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.distributed as torch_dist
from mmengine.optim import AmpOptimWrapper, OptimWrapper
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

import gradmix_plugin  # noqa: F401  (registers the plugin)
from gradmix_plugin.engine.hooks.gradmix_model_hook import (
    find_gradmix_augments,
)
from gradmix_plugin.evaluation import faiss_gpu_available, knn_scores
from gradmix_plugin.utils import free_port, library_versions

BACKBONE = dict(
    type='ResNet_CIFAR', depth=18, stem_channels=8, base_channels=8)
LAYERS = ['backbone.layer3', 'backbone.layer4']
PREPROCESSOR = dict(
    type='OSRDataPreprocessor', mean=[127.5] * 3, std=[64.0] * 3)
NUM_CLASSES = 4
BATCH = 8


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Versions, devices and PASS/FAIL checks of the plugin')
    parser.add_argument(
        '--device',
        default='cuda' if torch.cuda.is_available() else 'cpu',
        help='device of the checks (default: cuda when available)')
    return parser.parse_args(argv)


def environment_lines(device: torch.device) -> List[str]:
    """Versions and devices, one ``name: value`` line each."""
    versions = library_versions()
    lines = [f'{name}: {version}' for name, version in versions.items()]
    mmcv = 'mmcv (full, compiled ops)' if 'mmcv' in versions else \
        'mmcv-lite (no compiled ops)'
    lines.append(f'mmcv flavour: {mmcv}')
    lines.append(f'faiss GPU support: {faiss_gpu_available()}')
    lines.append(f'torch CUDA build: {torch.version.cuda}')
    lines.append(f'CPU cores: {os.cpu_count()}, torch threads: '
                 f'{torch.get_num_threads()}')
    for index in range(torch.cuda.device_count()):
        lines.append(f'cuda:{index}: {torch.cuda.get_device_name(index)}')
    lines.append(f'checks run on: {device}')
    return lines


def contrastive_model() -> torch.nn.Module:
    return MODELS.build(
        dict(
            type='ContrastiveClassifier',
            backbone=BACKBONE,
            neck=dict(type='GlobalAveragePooling'),
            projector=dict(
                type='ProjectionNeck',
                in_channels=64,
                hid_channels=64,
                out_channels=32),
            gradmix=dict(type='GradMix', attribution_layers=LAYERS),
            data_preprocessor=PREPROCESSOR))


def ce_model() -> torch.nn.Module:
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=BACKBONE,
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type='OSRLinearClsHead',
                num_classes=NUM_CLASSES,
                in_channels=64,
                loss=dict(type='CrossEntropyLoss', use_soft=True)),
            data_preprocessor=dict(PREPROCESSOR, num_classes=NUM_CLASSES),
            train_cfg=dict(
                augments=dict(
                    type='GradMix',
                    attribution_layers=LAYERS,
                    fill='partner'))))
    for gradmix in find_gradmix_augments(model):
        gradmix.attach_model(model)  # what GradMixModelHook does
    return model


def batch(num_views: int) -> dict:
    """Random images and labels as a dataloader gives them."""
    views = [
        torch.randint(0, 256, (BATCH, 3, 32, 32), dtype=torch.uint8)
        for _ in range(num_views)
    ]
    samples = [
        DataSample().set_gt_label(i % NUM_CLASSES) for i in range(BATCH)
    ]
    return dict(
        inputs=views if num_views > 1 else views[0], data_samples=samples)


@contextlib.contextmanager
def cpu_bf16(enabled: bool) -> Iterator[None]:
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=enabled):
        yield


def training_step(build: Callable[[], torch.nn.Module], num_views: int,
                  device: torch.device, amp: bool) -> str:
    """One ``train_step`` with parameter updates; raises on a problem."""
    torch.manual_seed(0)
    model = build().to(device).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    if amp and device.type == 'cuda':
        wrapper = AmpOptimWrapper(optimizer=optimizer, loss_scale='dynamic')
    else:
        wrapper = OptimWrapper(optimizer=optimizer)
    before = [p.detach().clone() for p in model.parameters()]
    with cpu_bf16(amp and device.type == 'cpu'):
        losses = model.train_step(batch(num_views), wrapper)
    loss = float(losses['loss'].detach())
    if not np.isfinite(loss):
        raise RuntimeError(f'non-finite loss {loss}')
    if all(torch.equal(a, b) for a, b in zip(before, model.parameters())):
        raise RuntimeError('no parameter changed')
    return f'loss {loss:.3f}'


def faiss_search(device: torch.device) -> str:
    """Exact kNN scores of 100 queries against 1,000 bank vectors."""
    rng = np.random.default_rng(0)
    bank = rng.standard_normal((1000, 32)).astype(np.float32)
    queries = rng.standard_normal((100, 32)).astype(np.float32)
    use_gpu = device.type == 'cuda'
    if use_gpu and not faiss_gpu_available():
        raise RuntimeError('this faiss has no GPU support; install faiss-gpu '
                           '(see README) or score on the CPU')
    scores = knn_scores(queries, bank, k=5, use_gpu=use_gpu)
    bank = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    expected = -(2 - 2 * np.sort(queries @ bank.T, axis=1)[:, -5])
    if not np.allclose(scores, expected, atol=1e-4):
        raise RuntimeError('faiss kNN scores differ from numpy')
    return f'{"GPU" if use_gpu else "CPU"} faiss, matches numpy'


def distributed(device: torch.device) -> str:
    """Init, all-reduce and destroy a 1-process group."""
    backend = 'nccl' if device.type == 'cuda' else 'gloo'
    torch_dist.init_process_group(
        backend=backend,
        init_method=f'tcp://127.0.0.1:{free_port()}',
        rank=0,
        world_size=1)
    try:
        value = torch.ones(1, device=device)
        torch_dist.all_reduce(value)
        if float(value) != 1.0:
            raise RuntimeError(f'all_reduce gave {float(value)}')
    finally:
        torch_dist.destroy_process_group()
    return f'{backend}: init, all_reduce, destroy'


def checks(device: torch.device) -> List[Tuple[str, Callable[[], str]]]:
    amp_name = 'fp16 AMP' if device.type == 'cuda' else 'bf16 autocast'
    steps = []
    for mode, build, views in (('contrastive', contrastive_model, 2),
                               ('CE', ce_model, 1)):
        for amp in (False, True):
            name = f'GradMix {mode} step' + (f', {amp_name}' if amp else '')
            steps.append((name, lambda b=build, v=views, a=amp:
                          training_step(b, v, device, a)))
    steps.append(('faiss kNN search', lambda: faiss_search(device)))
    steps.append(('distributed init / teardown',
                  lambda: distributed(device)))
    return steps


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    for line in environment_lines(device):
        print(line)
    failures = 0
    for name, check in checks(device):
        try:
            detail = check()
        except Exception as err:  # every failure is reported, then counted
            failures += 1
            print(f'FAIL  {name}: {type(err).__name__}: {err}')
            traceback.print_exc(limit=3, file=sys.stderr)
        else:
            print(f'PASS  {name} ({detail})')
    print(f'{failures} check(s) failed' if failures else 'all checks passed')
    return failures


if __name__ == '__main__':
    sys.exit(main())
