"""Build the open-set detector of a checkpoint, saved once, loaded anywhere.

The detector holds the feature bank (the config's OSRBankHook dataset:
known training images, test pipeline) with its labels, the class names,
the score and its parameters, the decision threshold and the provenance
(config, checkpoint SHA-256, data, split, held-out split). The threshold
keeps ``--tpr`` of a seeded held-out fraction of the known training
images (``--holdout``, held out of the bank), or is ``--threshold``.

Examples:
    python tools/build_detector.py configs/gradmix_resnet18_digits.py \
        work_dirs/gradmix_resnet18_digits/epoch_10.pth --out detector.pth
    python tools/build_detector.py CONFIG CKPT --score knn \
        --score-options k=20 --tpr 0.9 --bank-dtype float16 --out det.pth
"""
import argparse
import os.path as osp

from mmengine.config import DictAction
from mmengine.logging import print_log

from gradmix_plugin.apis.builder import build_detector
from gradmix_plugin.utils import read_config
from gradmix_plugin.utils.config_rules import merge_options


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Build the open-set detector of a checkpoint')
    parser.add_argument('config', help='config file of the model')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--out', required=True, help='the detector file (e.g. detector.pth)')
    parser.add_argument(
        '--score',
        default='class_knn',
        help='a registered score (gradmix_plugin.registry.SCORES); '
        'default class_knn')
    parser.add_argument(
        '--score-options',
        nargs='+',
        action=DictAction,
        default={},
        help='parameters of the score as key=value (default: those of the '
        "config's OSRMetric, e.g. class_knn_k)")
    threshold = parser.add_mutually_exclusive_group()
    threshold.add_argument(
        '--tpr',
        type=float,
        default=0.95,
        help='target true-positive rate on the held-out known images '
        '(default 0.95)')
    threshold.add_argument(
        '--threshold', type=float, help='use this threshold instead')
    holdout = parser.add_mutually_exclusive_group()
    holdout.add_argument(
        '--holdout',
        type=float,
        default=0.1,
        help='fraction of every known class held out of the bank to set the '
        'threshold (default 0.1)')
    holdout.add_argument(
        '--no-holdout',
        action='store_true',
        help='bank of all known training images, threshold set on them '
        '(optimistic)')
    parser.add_argument(
        '--seed', type=int, default=0, help='seed of the held-out draw')
    parser.add_argument(
        '--feature',
        choices=['embeds', 'feats', 'both'],
        help="bank vectors (default: the config's OSRMetric feature)")
    parser.add_argument(
        '--bank-dtype',
        choices=['float32', 'float16'],
        default='float32',
        help='storage of the bank in the file (float16: half the size)')
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--device', default=None, help='e.g. cpu, cuda:0')
    parser.add_argument(
        '--allow-mismatch',
        action='store_true',
        help='build even if the checkpoint records other data than the '
        'config (a warning instead of an error)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, as key=value pairs')
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    cfg = merge_options(read_config(args.config), args.cfg_options)
    detector = build_detector(
        cfg,
        args.checkpoint,
        score=args.score,
        score_options=args.score_options,
        tpr=args.tpr,
        threshold=args.threshold,
        holdout=None if args.no_holdout else args.holdout,
        seed=args.seed,
        feature=args.feature,
        batch_size=args.batch_size,
        device=args.device,
        allow_mismatch=args.allow_mismatch)
    detector.save(args.out, bank_dtype=args.bank_dtype)
    print_log(
        f'detector written to {args.out} '
        f'({osp.getsize(args.out) / 2**20:.2f} MiB): {detector.summary()}',
        logger='current')


if __name__ == '__main__':
    main()
