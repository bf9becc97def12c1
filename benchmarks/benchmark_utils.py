"""Shared helpers of the benchmark scripts: machine info, statistics,
memory measurement and output."""
import argparse
import datetime
import json
import os
import os.path as osp
import platform
import time
from contextlib import contextmanager
from typing import Callable, Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch


def machine_info(device: torch.device) -> dict:
    """Describe the machine and software a benchmark runs on.

    Args:
        device (torch.device): The device the benchmark times.

    Returns:
        dict: Date (UTC), CPU model, logical cores, load average, torch
        threads, ``OMP_NUM_THREADS``, Python/torch/mmengine/mmpretrain
        versions and, on CUDA, the GPU name.
    """
    import mmengine
    import mmpretrain

    import gradmix_plugin

    cpu_model = platform.processor() or 'unknown'
    if osp.exists('/proc/cpuinfo'):
        with open('/proc/cpuinfo') as cpuinfo:
            for line in cpuinfo:
                if line.startswith('model name'):
                    cpu_model = line.split(':', 1)[1].strip()
                    break
    info = dict(
        date_utc=datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec='seconds'),
        platform=platform.platform(),
        cpu_model=cpu_model,
        logical_cores=os.cpu_count(),
        load_average=os.getloadavg(),
        torch_threads=torch.get_num_threads(),
        omp_num_threads=os.environ.get('OMP_NUM_THREADS'),
        python=platform.python_version(),
        torch=torch.__version__,
        mmengine=mmengine.__version__,
        mmpretrain=mmpretrain.__version__,
        gradmix_plugin=gradmix_plugin.__version__,
        device=str(device),
    )
    if device.type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(device)
    return info


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so wall-clock timings are real.

    Args:
        device (torch.device): CUDA devices are synchronised; no-op on CPU.
    """
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_call(function: Callable[[], object], device: torch.device) -> float:
    """Wall-clock seconds of one call, device work included.

    Args:
        function (Callable): Called once without arguments.
        device (torch.device): Synchronised before and after.

    Returns:
        float: Elapsed seconds.
    """
    synchronize(device)
    start = time.perf_counter()
    function()
    synchronize(device)
    return time.perf_counter() - start


def summarize(seconds: Sequence[float]) -> dict:
    """Median and inter-quartile range of timings.

    Args:
        seconds (Sequence[float]): The timings in seconds.

    Returns:
        dict: ``median_s``, ``q1_s``, ``q3_s``, ``iqr_s``, ``min_s`` (the
        least disturbed run on a shared machine), ``n`` and the raw
        ``samples_s``.
    """
    q1, median, q3 = np.percentile(np.asarray(seconds), [25, 50, 75])
    return dict(
        median_s=float(median),
        q1_s=float(q1),
        q3_s=float(q3),
        iqr_s=float(q3 - q1),
        min_s=float(min(seconds)),
        n=len(seconds),
        samples_s=[float(s) for s in seconds])


def interleaved_timings(tasks: Dict[str, Callable[[], Callable[[], object]]],
                        repeats: int, warmup: int,
                        device: torch.device) -> Dict[str, List[float]]:
    """Time every task once per repetition, round-robin.

    Every repetition runs each task once, the starting task rotating from
    one repetition to the next, so slow drifts of the machine (load from
    other processes, thermal state) hit all tasks alike.

    Args:
        tasks (Dict[str, Callable]): Name to a ``prepare`` function, called
            untimed before every timed call, that returns the callable
            doing one unit of work (so fresh inputs or a recorded graph can
            be set up outside the timing).
        repeats (int): Timed repetitions.
        warmup (int): Untimed repetitions first.
        device (torch.device): The device being timed.

    Returns:
        Dict[str, List[float]]: Name to its ``repeats`` timings (seconds).
    """
    names = list(tasks)
    timings: Dict[str, List[float]] = {name: [] for name in names}
    for repetition in range(warmup + repeats):
        print(f'repetition {repetition + 1}/{warmup + repeats}'
              f'{" (warm-up)" if repetition < warmup else ""}', flush=True)
        shift = repetition % len(names)
        for name in names[shift:] + names[:shift]:
            elapsed = time_call(tasks[name](), device)
            if repetition >= warmup:
                timings[name].append(elapsed)
    return timings


@contextmanager
def peak_memory(device: torch.device) -> Iterator[dict]:
    """Measure the peak memory of the code run inside the block.

    On CUDA: ``torch.cuda.max_memory_allocated`` after resetting the peak,
    i.e. everything allocated by torch on the device at the peak (model,
    gradients and optimizer state included). On CPU, where torch keeps no
    allocator statistics and the process RSS hides freed-but-cached pages:
    the largest growth of live torch CPU tensor memory over the block,
    replayed from the allocation events of ``torch.profiler`` with
    ``profile_memory=True`` (tensors alive before the block, such as the
    model, gradients and optimizer state, are not counted).

    Yields:
        dict: Filled on exit with ``peak_mib`` and ``method``.
    """
    result: dict = {}
    if device.type == 'cuda':
        synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        yield result
        synchronize(device)
        result['peak_mib'] = torch.cuda.max_memory_allocated(device) / 2**20
        result['method'] = 'torch.cuda.max_memory_allocated (absolute)'
        return
    from torch._C._profiler import _EventType
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU],
                 profile_memory=True) as prof:
        yield result
    allocations = []
    pending = list(prof.profiler.kineto_results.experimental_event_tree())
    while pending:
        event = pending.pop()
        pending.extend(event.children)
        if event.tag == _EventType.Allocation and \
                event.extra_fields.device.type == 'cpu':
            allocations.append(
                (event.start_time_ns, event.extra_fields.alloc_size))
    allocations.sort()
    live = peak = 0
    for _, size in allocations:
        live += size
        peak = max(peak, live)
    result['peak_mib'] = peak / 2**20
    result['method'] = ('torch.profiler CPU allocation events: peak growth '
                        'of live tensor memory during the step')


def markdown_table(header: Sequence[str],
                   rows: Sequence[Sequence[object]]) -> str:
    """Format a markdown table.

    Args:
        header (Sequence[str]): Column titles.
        rows (Sequence[Sequence]): Rows of cells, converted with ``str``.

    Returns:
        str: The table, one line per row.
    """
    lines = ['| ' + ' | '.join(header) + ' |',
             '|' + '|'.join('---' for _ in header) + '|']
    lines += ['| ' + ' | '.join(str(cell) for cell in row) + ' |'
              for row in rows]
    return '\n'.join(lines)


def write_json(results: dict, path: Optional[str]) -> None:
    """Write ``results`` as indented JSON, creating the folder.

    Args:
        results (dict): JSON-serialisable results.
        path (str, optional): Output file; nothing is written if empty.
    """
    if not path:
        return
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, 'w') as file:
        json.dump(results, file, indent=2)
    print(f'results written to {path}')


def add_step_args(parser: argparse.ArgumentParser, width_help: str,
                  repeats: int, warmup: int, out: str) -> None:
    """The options of the training-step benchmarks.

    ``--width``, ``--batch-size``, ``--image-size``, ``--repeats``,
    ``--warmup``, ``--device``, ``--seed``, ``--out`` and ``--quick``
    (applied by :func:`apply_quick`).

    Args:
        parser (argparse.ArgumentParser): The benchmark's parser.
        width_help (str): What ``--width`` sets in this benchmark.
        repeats (int): Default timed repetitions.
        warmup (int): Default untimed repetitions.
        out (str): Default JSON output file.
    """
    parser.add_argument(
        '--width', type=int, default=64,
        help=f'{width_help} (default: 64)')
    parser.add_argument(
        '--batch-size', type=int, default=64,
        help='images per step; contrastive steps forward two views of '
        'each (default: 64)')
    parser.add_argument(
        '--image-size', type=int, default=32,
        help='side of the square synthetic images (default: 32)')
    parser.add_argument(
        '--repeats', type=int, default=repeats,
        help=f'timed interleaved repetitions (default: {repeats})')
    parser.add_argument(
        '--warmup', type=int, default=warmup,
        help=f'untimed repetitions first (default: {warmup})')
    parser.add_argument(
        '--device', default='cuda' if torch.cuda.is_available() else 'cpu',
        help='torch device (default: cuda if available, else cpu)')
    parser.add_argument(
        '--seed', type=int, default=0, help='random seed (default: 0)')
    parser.add_argument(
        '--out', default=out, help='JSON output file (default: %(default)s)')
    parser.add_argument(
        '--quick', action='store_true',
        help='smoke-test mode: width 8, batch 8, 16x16 images, 2 repeats, '
        '1 warm-up (overrides those options)')


def apply_quick(args: argparse.Namespace) -> argparse.Namespace:
    """Apply ``--quick`` of :func:`add_step_args`."""
    if args.quick:
        args.width, args.batch_size, args.image_size = 8, 8, 16
        args.repeats, args.warmup = 2, 1
    return args
