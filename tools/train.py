"""Train a model with gradmix_plugin (mmpretrain/mmengine Runner).

Examples:
    python tools/train.py configs/gradmix_resnet18_digits.py
    python tools/train.py configs/gradmix_resnet18_tiny.py \
        --cfg-options osr_split=3 --resume
    bash tools/dist_train.sh configs/gradmix_resnet18_cifar10.py 2
"""
import argparse
import logging
from typing import Optional

import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import CheckpointLoader, find_latest_checkpoint

from gradmix_plugin.utils import (
    add_custom_hook,
    add_runner_args,
    build_runner,
    check_checkpoint_fits,
    check_provenance,
    dataset_provenance,
    distributed_teardown,
    parse_runner_args,
    prepare_config,
    recorded_provenance,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a model')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='resume from the given checkpoint, or, without a value, from '
        'the latest checkpoint in the work directory')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='do not evaluate during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='scale the learning rate by the actual total batch size')
    parser.add_argument(
        '--no-persistent-workers',
        action='store_true',
        help='disable persistent_workers in the val/test dataloaders '
        '(training workers are restarted every epoch for exact resume)')
    parser.add_argument(
        '--allow-mismatch',
        action='store_true',
        help='resume even if the checkpoint records another protocol, '
        'split, classes or dataset than the config (a warning instead of '
        'an error)')
    add_runner_args(parser)
    return parse_runner_args(parser)


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge the command line into the config."""
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None
    if args.amp:
        cfg.optim_wrapper.type = 'AmpOptimWrapper'
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    add_custom_hook(cfg, 'ProvenanceHook')
    if args.launcher != 'none':
        # DDP does not broadcast buffers here: average the BatchNorm
        # statistics before validation and saving, so that validation,
        # the checkpoint and tools/test.py see the same model.
        add_custom_hook(cfg, 'SyncBuffersHook')
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(field, None)
        if loader is None:
            continue
        # Pinned memory only helps copies to a GPU (and warns without one).
        loader.setdefault('pin_memory', torch.cuda.is_available())
        loader.setdefault('persistent_workers', True)
        if args.no_pin_memory:
            loader.pin_memory = False
        if args.no_persistent_workers:
            loader.persistent_workers = False
    prepare_config(cfg, args.config, args.work_dir, args.launcher,
                   args.cfg_options)
    make_workers_resumable(cfg.get('train_dataloader', None))
    if cfg.resume:
        check_resume(cfg, args.allow_mismatch)
    return cfg


def check_resume(cfg: Config, allow_mismatch: bool) -> None:
    """Before training: find what ``--resume`` resumes, and refuse a
    checkpoint trained on other data or with other shapes.

    Without a checkpoint to resume, say so and train from scratch (mmengine
    would log "Auto resumed from the latest checkpoint None.").
    """
    path = cfg.load_from or find_latest_checkpoint(cfg.work_dir)
    if path is None:
        print_log(
            f'--resume: no checkpoint found in {cfg.work_dir} (no '
            'last_checkpoint file); training starts from scratch',
            logger='current',
            level=logging.WARNING)
        cfg.resume = False
        return
    checkpoint = CheckpointLoader.load_checkpoint(path, 'cpu')
    check_provenance(
        recorded_provenance(checkpoint),
        dataset_provenance(cfg, 'train_dataloader'), path, allow_mismatch)
    cfg.load_from = path


def make_workers_resumable(loader: Optional[dict]) -> None:
    """Restart the training workers every epoch, seeded from the
    checkpointed torch generator, so that ``--resume`` redraws the data
    augmentation of an uninterrupted run (see
    :func:`gradmix_plugin.utils.resumable_worker_init_fn`). A
    ``worker_init_fn`` of the config is kept."""
    if loader is None or not loader.get('num_workers', 0):
        return
    if loader.get('persistent_workers'):
        print_log(
            'train_dataloader: persistent_workers turned off, so that the '
            'workers of every epoch are seeded from the checkpointed random '
            'state and --resume is exact',
            logger='current')
    loader.persistent_workers = False
    loader.setdefault('worker_init_fn',
                      dict(type='resumable_worker_init_fn'))


def main() -> None:
    args = parse_args()
    cfg = merge_args(Config.fromfile(args.config), args)
    with distributed_teardown():
        runner = build_runner(cfg)
        if cfg.resume:
            check_checkpoint_fits(
                runner.model.module
                if is_model_wrapper(runner.model) else runner.model,
                cfg.load_from)
        runner.train()
        del runner  # the process group must not outlive the with block


if __name__ == '__main__':
    main()
