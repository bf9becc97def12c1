"""Train a model with gradmix_plugin (mmpretrain/mmengine Runner).

Examples:
    python tools/train.py configs/gradmix_resnet18_digits.py
    python tools/train.py configs/gradmix_resnet18_tiny.py \
        --cfg-options osr_split=3 --resume
    bash tools/dist_train.sh configs/gradmix_resnet18_cifar10.py 2
"""
import argparse

import torch
from mmengine.config import Config
from mmengine.registry import RUNNERS

from gradmix_plugin.utils import (
    add_runner_args,
    apply_smoke,
    merge_tool_args,
    parse_runner_args,
    read_config,
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
    parser.add_argument(
        '--smoke',
        type=int,
        metavar='N',
        help='a smoke run: at most N samples per class in every dataset '
        '(training, bank, validation, test, OOD), at most 2 epochs, '
        'validation at the end')
    add_runner_args(parser)
    return parse_runner_args(parser)


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge the command line into the config; the runner (``OSRRunner``,
    also when the config names no ``runner_type``) does the rest."""
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
    if args.allow_mismatch:
        cfg.allow_mismatch = True
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
    cfg = merge_tool_args(cfg, args)
    if args.smoke is not None:
        apply_smoke(cfg, args.smoke)
    return cfg


def main() -> None:
    args = parse_args()
    cfg = merge_args(read_config(args.config), args)
    RUNNERS.build(cfg).train()


if __name__ == '__main__':
    main()
