"""Real-data experiment: does GradMix help open-set recognition on CIFAR-10?

Trains four arms with identical data, width, schedule and seed on CIFAR-10
OSR split 0 (6 known classes, 30,000 training images; 6,000 known + 4,000
unknown test images), evaluates each with ``tools/test.py`` and writes a
table of AUROC, OSCR and closed-set accuracy for the ``class_knn`` and
``mls`` scores:

- ``supcon``: SupCon + SimCLR (``configs/supcon_resnet18_cifar10.py``);
- ``gradmix``: SupCon + SimCLR + GradMix
  (``configs/gradmix_resnet18_cifar10.py``);
- ``ce``: cross-entropy (``configs/ce_resnet18_cifar10.py``);
- ``ce_gradmix``: cross-entropy + GradMix, partner fill
  (``configs/ce_gradmix_resnet18_cifar10.py``).

The contrastive arms get a linear classifier on detached features (it does
not change the representation) so that ``mls`` exists for every arm. Every
arm is resumable: run the same command again and finished arms are skipped,
interrupted ones resume from their last checkpoint.

Example:
    python benchmarks/cifar10_osr_experiment.py --data-root /tmp/cifar10 \
        --work-root work_dirs/cifar10_osr --epochs 10 --width 16
"""
import argparse
import json
import os
import os.path as osp
import subprocess
import sys
import time
from typing import Dict, List

import torch
from benchmark_utils import machine_info
from mmengine.config import Config

from gradmix_plugin.utils import iter_dicts

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
ARMS = {
    'supcon': 'configs/supcon_resnet18_cifar10.py',
    'gradmix': 'configs/gradmix_resnet18_cifar10.py',
    'ce': 'configs/ce_resnet18_cifar10.py',
    'ce_gradmix': 'configs/ce_gradmix_resnet18_cifar10.py',
}
REPORTED = ('auroc', 'oscr', 'accuracy')


def set_everywhere(cfg: Config, key: str, value) -> None:
    """Set ``key`` in every dict of the config that already has it."""
    for node in iter_dicts(cfg._cfg_dict):
        if key in node:
            node[key] = value


def arm_config(arm: str, args: argparse.Namespace, seed: int) -> Config:
    """The config of one arm with the experiment's settings."""
    cfg = Config.fromfile(osp.join(REPO, ARMS[arm]))
    set_everywhere(cfg, 'data_root', args.data_root)
    set_everywhere(cfg, 'num_workers', args.num_workers)
    set_everywhere(cfg, 'persistent_workers',
                   args.num_workers > 0)
    set_everywhere(cfg, 'batch_size', args.batch_size)
    width = args.width
    feat_dim = width * 8
    cfg.model.backbone.update(stem_channels=width, base_channels=width)
    if cfg.model.type == 'ContrastiveClassifier':
        cfg.model.projector.update(in_channels=feat_dim)
        cfg.model.head = dict(
            type='OSRLinearClsHead', num_classes=6, in_channels=feat_dim)
        feature = 'embeds'
    else:
        cfg.model.head.in_channels = feat_dim
        feature = 'feats'
    evaluator = dict(
        type='OSRMetric', scores=('class_knn', 'mls'), feature=feature)
    cfg.val_evaluator = cfg.test_evaluator = evaluator
    cfg.train_cfg.update(max_epochs=args.epochs, val_interval=args.epochs)
    lr = cfg.optim_wrapper.optimizer.lr
    cfg.param_scheduler.update(
        end=args.epochs, T_max=args.epochs, eta_min=lr * args.final_lr_ratio)
    cfg.default_hooks.checkpoint.update(interval=1, max_keep_ckpts=2)
    cfg.default_hooks.logger.update(interval=50)
    cfg.randomness = dict(seed=seed, deterministic=False)
    return cfg


def run(command: List[str], log_path: str) -> None:
    with open(log_path, 'a') as log:
        subprocess.run(
            command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            check=True)


def run_arm(arm: str, args: argparse.Namespace, seed: int) -> Dict:
    """Train (or resume) and test one arm; returns its metrics."""
    work_dir = osp.abspath(osp.join(args.work_root, f'{arm}_seed{seed}'))
    metrics_path = osp.join(work_dir, 'test', 'osr_metrics.json')
    if not osp.exists(metrics_path):
        os.makedirs(work_dir, exist_ok=True)
        config_path = osp.join(work_dir, 'experiment_config.py')
        arm_config(arm, args, seed).dump(config_path)
        final = osp.join(work_dir, f'epoch_{args.epochs}.pth')
        log_path = osp.join(work_dir, 'experiment.log')
        start = time.time()
        if not osp.exists(final):
            command = [
                sys.executable, 'tools/train.py', config_path, '--work-dir',
                work_dir, '--no-validate'
            ]
            if osp.exists(osp.join(work_dir, 'last_checkpoint')):
                command.append('--resume')
            run(command, log_path)
        run([
            sys.executable, 'tools/test.py', config_path, final,
            '--work-dir',
            osp.join(work_dir, 'test'), '--out',
            osp.join(work_dir, 'test', 'scores.npz'), '--show-dir',
            osp.join(work_dir, 'test', 'plots')
        ], log_path)
        print(f'{arm} seed {seed}: {time.time() - start:.0f} s', flush=True)
    with open(metrics_path) as f:
        return json.load(f)


def table(results: Dict[str, Dict]) -> str:
    """Markdown table: one row per arm and score."""
    header = '| arm | score | AUROC | OSCR | accuracy |'
    lines = [header, '|---|---|---|---|---|']
    for name, metrics in results.items():
        for score in ('class_knn', 'mls'):
            values = [
                metrics.get(f'osr/{score}/{key}', float('nan'))
                for key in REPORTED
            ]
            lines.append(f'| {name} | {score} | ' +
                         ' | '.join(f'{v:.2f}' for v in values) + ' |')
    return '\n'.join(lines)


def plot_roc(work_dirs: Dict[str, str], path: str) -> None:
    """ROC curves (known = positive) of every arm, one panel per score."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.metrics import roc_curve

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.2))
    for axis, score in zip(axes, ('class_knn', 'mls')):
        for name, work_dir in work_dirs.items():
            scores = np.load(osp.join(work_dir, 'test', 'scores.npz'))
            fpr, tpr, _ = roc_curve(scores['is_known'],
                                    scores[f'score_{score}'])
            axis.plot(fpr, tpr, label=name)
        axis.plot([0, 1], [0, 1], ':', color='gray')
        axis.set(title=score, xlabel='FPR (unknown accepted)',
                 ylabel='TPR (known accepted)')
        axis.legend(loc='lower right', fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--data-root',
        required=True,
        help='folder with cifar10 train/ and test/ class folders')
    parser.add_argument('--work-root', default='work_dirs/cifar10_osr')
    parser.add_argument(
        '--arms', nargs='+', default=list(ARMS), choices=list(ARMS))
    parser.add_argument('--seeds', nargs='+', type=int, default=[0])
    parser.add_argument('--epochs', type=int, default=10)
    parser.add_argument(
        '--width',
        type=int,
        default=16,
        help='ResNet-18 base width (64 is the full network)')
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument(
        '--final-lr-ratio',
        type=float,
        default=0.01,
        help='cosine annealing ends at lr * this ratio; the recipes\' '
        'floor (0.8 ** 3 = 0.512) is meant for 600 epochs and barely '
        'anneals a short run')
    parser.add_argument('--num-workers', type=int, default=1)
    args = parser.parse_args()
    if not 0 <= args.final_lr_ratio <= 1:
        parser.error('--final-lr-ratio must be in [0, 1], got '
                     f'{args.final_lr_ratio}')
    return args


def main() -> None:
    args = parse_args()
    for split in ('train', 'test'):
        if not osp.isdir(osp.join(args.data_root, split)):
            raise FileNotFoundError(
                f'--data-root {args.data_root} has no {split}/ folder of '
                'CIFAR-10 class folders')
    results, work_dirs = {}, {}
    for seed in args.seeds:
        for arm in args.arms:
            name = f'{arm} (seed {seed})'
            results[name] = run_arm(arm, args, seed)
            work_dirs[name] = osp.join(args.work_root, f'{arm}_seed{seed}')
    summary = table(results)
    print(summary)
    os.makedirs(args.work_root, exist_ok=True)
    with open(osp.join(args.work_root, 'summary.json'), 'w') as f:
        device = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
        json.dump(
            dict(
                machine=machine_info(device),
                settings=vars(args),
                results=results),
            f,
            indent=2)
    with open(osp.join(args.work_root, 'summary.md'), 'w') as f:
        f.write(summary + '\n')
    plot_roc(work_dirs, osp.join(args.work_root, 'roc.png'))


if __name__ == '__main__':
    main()
