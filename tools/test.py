"""Test a checkpoint and report open-set recognition metrics.

Prints a table of every metric for every score, writes the metrics with
their provenance as JSON (``<work_dir>/osr_metrics.json``), the per-sample
scores as ``.npz`` with ``--out``, and ROC/histogram/OSCR plots as PNG with
``--show-dir``. Before testing, the checkpoint must fit the model and
record the protocol, split and classes of the config's test set (else an
error names both; ``--allow-mismatch`` turns it into a warning).

Examples:
    python tools/test.py configs/gradmix_resnet18_digits.py \
        work_dirs/gradmix_resnet18_digits/epoch_30.pth --out scores.npz
    bash tools/dist_test.sh CONFIG CHECKPOINT 2
"""
import argparse

from mmengine.config import Config
from mmengine.registry import RUNNERS

from gradmix_plugin.utils import (
    add_runner_args,
    merge_test_args,
    parse_runner_args,
    read_config,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Test a checkpoint with open-set recognition metrics')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir', help='the dir to save logs and the metrics JSON')
    parser.add_argument(
        '--out', help='write per-sample scores to this .npz file')
    parser.add_argument(
        '--show-dir', help='write ROC, histogram and OSCR plots (PNG) here')
    parser.add_argument(
        '--amp', action='store_true', help='test with mixed precision')
    parser.add_argument(
        '--allow-mismatch',
        action='store_true',
        help='test even if the checkpoint records another protocol, split, '
        'classes or dataset than the config (a warning instead of an '
        'error)')
    add_runner_args(parser)
    return parse_runner_args(parser)


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge the command line into the config; the runner (``OSRRunner``,
    also when the config names no ``runner_type``) checks the checkpoint
    and writes the report (``OSRReportHook``)."""
    if args.amp:
        cfg.test_cfg.fp16 = True
    hooks = [h for h in cfg.get('custom_hooks', None) or []
             if h.get('type') != 'OSRReportHook']
    cfg.custom_hooks = hooks + [
        dict(type='OSRReportHook', out=args.out, show_dir=args.show_dir)
    ]
    return merge_test_args(cfg, args)


def main() -> None:
    args = parse_args()
    cfg = merge_args(read_config(args.config), args)
    RUNNERS.build(cfg).test()


if __name__ == '__main__':
    main()
