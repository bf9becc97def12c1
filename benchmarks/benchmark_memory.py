"""Peak memory and step time of the contrastive GradMix step's options.

Runs full training steps (``model.train_step`` with the config's mmengine
``OptimWrapper``: preprocessing, forward, backward, Adam update) of the
two-view ``ContrastiveClassifier`` of the CIFAR-10 recipes (ResNet-18 with
the CIFAR stem; ``--width`` narrows it) on synthetic data, in these modes:

- ``plain``: SupCon + SimCLR without GradMix
  (``configs/supcon_resnet18_cifar10.py``);
- ``gradmix``: the GradMix recipe as configured
  (``configs/gradmix_resnet18_cifar10.py``: ``memory='default'``,
  ``bn_stats='reference'``);
- ``gradmix_single``: the same with ``bn_stats='single'`` (no repeated
  BatchNorm update: the cost of the reference statistics);
- ``gradmix_lean``: the same with ``memory='lean'`` (one graph at a time).

Step times are interleaved (one step of every mode per repetition,
round-robin) and reported as median, IQR and minimum with the ratio to
``plain``; the peak memory of one more step per mode is measured with
:func:`benchmark_utils.peak_memory` (CUDA: ``max_memory_allocated``; CPU:
the peak growth of live tensor memory replayed from ``torch.profiler``
allocation events).

Example::

    OMP_NUM_THREADS=2 python benchmarks/benchmark_memory.py --repeats 5
"""
import argparse
import os
from typing import Callable, Dict

import torch
from benchmark_training import SyntheticBatch, build_model, load_recipe_config
from benchmark_utils import (
    add_step_args,
    apply_quick,
    interleaved_timings,
    machine_info,
    markdown_table,
    peak_memory,
    summarize,
    write_json,
)
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper

# Mode -> (recipe of benchmark_training, ContrastiveClassifier options).
MODES = dict(
    plain=('supcon_simclr', {}),
    gradmix=('supcon_simclr_gradmix', {}),
    gradmix_single=('supcon_simclr_gradmix', dict(bn_stats='single')),
    gradmix_lean=('supcon_simclr_gradmix', dict(memory='lean')),
)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Peak memory and step time of the contrastive step: '
        'plain, GradMix (default, bn_stats=single, memory=lean).')
    add_step_args(
        parser,
        'base_channels (and stem_channels) of ResNet_CIFAR-18; 64 is the '
        'full-width ResNet-18',
        repeats=5,
        warmup=1,
        out='benchmarks/results/memory.json')
    return apply_quick(parser.parse_args(argv))


def main(argv=None) -> dict:
    args = parse_args(argv)
    MMLogger.get_instance('benchmark_memory', log_level='WARNING')
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    info = machine_info(device)
    print(f'machine: {info}')

    models, wrappers = {}, {}
    for mode, (recipe, options) in MODES.items():
        cfg = load_recipe_config(recipe, args.width)
        cfg.model.update(options)
        models[mode] = build_model(recipe, cfg.model, device)
        wrappers[mode] = build_optim_wrapper(models[mode], cfg.optim_wrapper)
    batch = SyntheticBatch(args.batch_size, args.image_size,
                           cfg.model.data_preprocessor.num_classes, 2,
                           torch.Generator().manual_seed(args.seed))

    def step_task(mode: str) -> Callable[[], Callable]:

        def prepare():
            data = batch.data()
            return lambda: models[mode].train_step(data, wrappers[mode])

        return prepare

    tasks: Dict[str, Callable[[], Callable]] = {
        mode: step_task(mode)
        for mode in MODES
    }
    timings = interleaved_timings(tasks, args.repeats, args.warmup, device)
    memory = {}
    for mode in MODES:
        data = batch.data()
        with peak_memory(device) as measured:
            models[mode].train_step(data, wrappers[mode])
        memory[mode] = measured

    steps = {}
    plain = summarize(timings['plain'])
    for mode in MODES:
        stats = summarize(timings[mode])
        steps[mode] = dict(
            options=MODES[mode][1],
            ratio_to_plain=stats['median_s'] / plain['median_s'],
            min_ratio_to_plain=stats['min_s'] / plain['min_s'],
            peak_memory_mib=memory[mode]['peak_mib'],
            memory_ratio_to_plain=(memory[mode]['peak_mib'] /
                                   memory['plain']['peak_mib']),
            **stats)
    results = dict(
        benchmark='memory',
        machine=info,
        load_average_after=list(os.getloadavg()),
        settings=dict(
            width=args.width, batch_size=args.batch_size,
            image_size=args.image_size, views=2, repeats=args.repeats,
            warmup=args.warmup, seed=args.seed,
            memory_method=memory['plain']['method']),
        steps=steps)
    print_table(results)
    write_json(results, args.out)
    return results


def print_table(results: dict) -> None:
    """Print the modes side by side in markdown."""
    rows = [(mode, f"{1000 * step['median_s']:.0f}",
             f"{1000 * step['iqr_s']:.0f}", f"{1000 * step['min_s']:.0f}",
             f"{step['ratio_to_plain']:.2f}x",
             f"{step['peak_memory_mib']:.1f}",
             f"{step['memory_ratio_to_plain']:.2f}x")
            for mode, step in results['steps'].items()]
    print(
        markdown_table(('mode', 'median step (ms)', 'IQR (ms)', 'min (ms)',
                        'time / plain (medians)', 'peak memory (MiB)',
                        'memory / plain'), rows))
    print(f"memory: {results['settings']['memory_method']}")


if __name__ == '__main__':
    main()
