"""Framework overhead: the mmengine training loop vs a bare PyTorch loop.

Trains the same model (from the recipe's config in ``configs/``), on the
same in-memory synthetic tensors, with the same optimizer and batch size,
once through mmengine's ``Runner`` (iteration-based loop, the config's
default hooks, logging every ``--log-interval`` iterations) and once
through a plain loop:
``DataLoader`` -> normalise -> forward -> loss -> ``zero_grad`` ->
``backward`` -> ``step``. Both loops draw their batches from a
``DataLoader`` over the same tensors (the mmengine one packs each sample
as ``inputs`` + ``DataSample`` and collates with ``default_collate``, as
mmpretrain's pipelines do; the bare one uses a ``TensorDataset``).

An iteration is timed from the end of the previous one to the end of its
optimizer step (data loading, preprocessing, hooks and logging included).
The loops alternate over ``--rounds`` rounds (the order flips every round)
and the first ``--warmup`` iterations of each round are dropped.

Example::

    OMP_NUM_THREADS=2 python benchmarks/benchmark_framework_overhead.py
"""
import argparse
import copy
import os
import tempfile
import time
from functools import partial
from typing import Callable, List, Tuple

import torch
import torch.nn.functional as F
from benchmark_training import (
    CONTRASTIVE_RECIPES,
    RECIPE_CONFIGS,
    load_recipe_config,
)
from benchmark_utils import (
    machine_info,
    markdown_table,
    summarize,
    synchronize,
    write_json,
)
from mmengine.config import Config
from mmengine.dataset import default_collate
from mmengine.device import get_device
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch.utils.data import DataLoader, Dataset, TensorDataset

MODEL_CHOICES = ('ce', 'supcon_simclr')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Time an iteration of the mmengine training loop '
        '(Runner) against a bare PyTorch loop of the same model, data, '
        'optimizer and batch size.')
    parser.add_argument(
        '--model', choices=MODEL_CHOICES, default='ce',
        help='the recipe whose config (model, optimizer, runtime) is '
        'trained: ce (configs/ce_resnet18_cifar10.py) or supcon_simclr '
        '(configs/supcon_resnet18_cifar10.py) (default: ce)')
    parser.add_argument(
        '--width', type=int, default=64,
        help='base_channels of ResNet_CIFAR-18 (default: 64, full width)')
    parser.add_argument(
        '--batch-size', type=int, default=64,
        help='images per iteration (default: 64)')
    parser.add_argument(
        '--image-size', type=int, default=32,
        help='side of the square synthetic images (default: 32)')
    parser.add_argument(
        '--iters', type=int, default=20,
        help='timed iterations per loop and round (default: 20)')
    parser.add_argument(
        '--warmup', type=int, default=3,
        help='untimed iterations at the start of each loop (default: 3)')
    parser.add_argument(
        '--rounds', type=int, default=3,
        help='alternating rounds of both loops (default: 3)')
    parser.add_argument(
        '--log-interval', type=int, default=10,
        help='LoggerHook interval of the mmengine loop (default: 10)')
    parser.add_argument(
        '--seed', type=int, default=0, help='random seed (default: 0)')
    parser.add_argument(
        '--out', default='benchmarks/results/framework_overhead.json',
        help='JSON output file (default: %(default)s)')
    parser.add_argument(
        '--quick', action='store_true',
        help='smoke-test mode: width 8, batch 8, 16x16 images, 4 timed '
        'iterations, 1 warm-up, 2 rounds, logging every 2 iterations '
        '(overrides those options)')
    args = parser.parse_args(argv)
    if args.quick:
        args.width, args.batch_size, args.image_size = 8, 8, 16
        args.iters, args.warmup, args.rounds = 4, 1, 2
        args.log_interval = 2
    return args


class PackedDataset(Dataset):
    """In-memory samples packed as mmpretrain's ``PackInputs`` does.

    Args:
        images (torch.Tensor): ``(N, V, C, H, W)`` uint8 views.
        labels (torch.Tensor): ``(N,)`` class indices.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        self.images = images
        self.labels = labels
        self.metainfo = dict(
            classes=tuple(str(c) for c in range(int(labels.max()) + 1)))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int) -> dict:
        views = list(self.images[index])
        return dict(
            inputs=views if len(views) > 1 else views[0],
            data_samples=DataSample().set_gt_label(int(self.labels[index])))


class IterationClock(Hook):
    """Record the time at the end of every training iteration.

    Runs last (``LOWEST``), so an iteration's logging and other hooks fall
    into it.

    Args:
        device (torch.device): Synchronised before each reading.
    """

    priority = 'LOWEST'

    def __init__(self, device: torch.device):
        self.device = device
        self.stamps: List[float] = []

    def before_train(self, runner) -> None:
        synchronize(self.device)
        self.stamps.append(time.perf_counter())

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        synchronize(self.device)
        self.stamps.append(time.perf_counter())


def iteration_times(stamps: List[float], warmup: int) -> List[float]:
    """Differences of consecutive stamps, warm-up iterations dropped."""
    return [b - a for a, b in zip(stamps, stamps[1:])][warmup:]


def run_mmengine(args: argparse.Namespace, cfg: Config,
                 images: torch.Tensor, labels: torch.Tensor,
                 device: torch.device, work_dir: str,
                 name: str) -> List[float]:
    """Train through mmengine's Runner; return the iteration times.

    The model, optimizer, default hooks, environment, log processor and
    visualizer come from the recipe's config; the loop is iteration-based,
    the checkpoint hook, the learning-rate schedule (per epoch) and the
    config's custom hooks (the kNN bank hook needs a real dataset) are left
    out.
    """
    loader = DataLoader(
        PackedDataset(images, labels), batch_size=args.batch_size,
        shuffle=True, drop_last=True, collate_fn=default_collate)
    clock = IterationClock(device)
    default_hooks = copy.deepcopy(cfg.default_hooks)
    default_hooks.logger.interval = args.log_interval
    default_hooks.checkpoint = None
    runner = Runner(
        model=copy.deepcopy(cfg.model),
        work_dir=work_dir,
        experiment_name=name,
        train_dataloader=loader,
        train_cfg=dict(
            type='IterBasedTrainLoop', max_iters=args.warmup + args.iters),
        optim_wrapper=copy.deepcopy(cfg.optim_wrapper),
        default_hooks=default_hooks,
        custom_hooks=[clock],
        env_cfg=cfg.env_cfg,
        log_processor=dict(cfg.get('log_processor', {}), by_epoch=False),
        visualizer=copy.deepcopy(cfg.visualizer),
        randomness=dict(seed=args.seed),
        default_scope=cfg.default_scope)
    runner.train()
    return iteration_times(clock.stamps, args.warmup)


def bare_loss(model: torch.nn.Module, model_name: str,
              views: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The training loss of a normalised ``(B, V, C, H, W)`` batch.

    CE: cross-entropy of the logits. Contrastive: SupCon + 1.2 * SimCLR of
    the projection-head embeddings of all views (the model's own loss
    module, as its recipe).
    """
    if model_name not in CONTRASTIVE_RECIPES:
        return F.cross_entropy(model(views[:, 0], mode='tensor'), labels)
    num_views = views.shape[1]
    embeds = model(torch.cat(views.unbind(1)), mode='tensor')
    embeds = torch.stack(embeds.chunk(num_views), dim=1)
    loss_fn = model.contrastive_loss
    return model.gamma * loss_fn(embeds, labels) + \
        model.lambda_ssl * loss_fn(embeds)


def run_bare(args: argparse.Namespace, cfg: Config, images: torch.Tensor,
             labels: torch.Tensor, device: torch.device) -> List[float]:
    """Train through a plain PyTorch loop; return the iteration times.

    Same model and optimizer as the config; the preprocessing (BGR to RGB
    when the config's preprocessor has ``to_rgb``, then mean/std
    normalisation) is written out.
    """
    torch.manual_seed(args.seed)
    model = MODELS.build(copy.deepcopy(cfg.model))
    model.init_weights()
    model.to(device).train()
    optim = dict(cfg.optim_wrapper.optimizer)
    optimizer = getattr(torch.optim, optim.pop('type'))(
        model.parameters(), **optim)
    preprocessor = cfg.model.data_preprocessor
    mean = torch.tensor(preprocessor.mean, device=device).view(1, 1, 3, 1, 1)
    std = torch.tensor(preprocessor.std, device=device).view(1, 1, 3, 1, 1)
    loader = DataLoader(
        TensorDataset(images, labels), batch_size=args.batch_size,
        shuffle=True, drop_last=True)
    total = args.warmup + args.iters
    synchronize(device)
    stamps = [time.perf_counter()]
    while len(stamps) <= total:
        for batch_views, batch_labels in loader:
            views = batch_views.to(device).float()
            if preprocessor.get('to_rgb', False):
                views = views.flip(2)
            views = (views - mean) / std
            loss = bare_loss(model, args.model, views,
                             batch_labels.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            synchronize(device)
            stamps.append(time.perf_counter())
            if len(stamps) > total:
                break
    return iteration_times(stamps, args.warmup)


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = torch.device(get_device())
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    cfg = load_recipe_config(args.model, args.width)
    num_views = 2 if args.model in CONTRASTIVE_RECIPES else 1
    num_samples = args.batch_size * (args.warmup + args.iters)
    images = torch.randint(
        0, 256,
        (num_samples, num_views, 3, args.image_size, args.image_size),
        dtype=torch.uint8, generator=generator)
    labels = torch.randint(
        0, cfg.model.data_preprocessor.num_classes, (num_samples, ),
        generator=generator)
    info = machine_info(device)
    print(f'machine: {info}')

    times = dict(mmengine=[], bare=[])
    threads = dict(mmengine=[], bare=[])
    with tempfile.TemporaryDirectory() as work_dir:
        for round_index in range(args.rounds):
            loops: List[Tuple[str, Callable[[], List[float]]]] = [
                ('bare', partial(run_bare, args, cfg, images, labels, device)),
                ('mmengine',
                 partial(run_mmengine, args, cfg, images, labels, device,
                         work_dir, f'framework_overhead_{round_index}')),
            ]
            if round_index % 2:
                loops.reverse()
            for name, loop in loops:
                times[name].extend(loop())
                threads[name].append(torch.get_num_threads())

    stats = {name: summarize(seconds) for name, seconds in times.items()}
    ratio = stats['mmengine']['median_s'] / stats['bare']['median_s']
    min_ratio = stats['mmengine']['min_s'] / stats['bare']['min_s']
    results = dict(
        benchmark='framework_overhead',
        machine=info,
        load_average_after=list(os.getloadavg()),
        settings=dict(
            model=args.model, width=args.width, batch_size=args.batch_size,
            image_size=args.image_size, config=RECIPE_CONFIGS[args.model],
            iters=args.iters, warmup=args.warmup, rounds=args.rounds,
            log_interval=args.log_interval, seed=args.seed,
            torch_threads=threads),
        loops=stats,
        overhead_ratio=ratio,
        min_overhead_ratio=min_ratio)
    rows = [(name, f"{1000 * stats[name]['median_s']:.1f}",
             f"{1000 * stats[name]['iqr_s']:.1f}",
             f"{1000 * stats[name]['min_s']:.1f}", stats[name]['n'])
            for name in ('bare', 'mmengine')]
    print(
        markdown_table(('loop', 'median iteration (ms)', 'IQR (ms)',
                        'min (ms)', 'iterations'), rows))
    print(f'mmengine / bare: {ratio:.3f}x (medians), {min_ratio:.3f}x '
          '(minima)')
    write_json(results, args.out)
    return results


if __name__ == '__main__':
    main()
