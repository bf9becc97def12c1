"""Cost of the corruption robustness evaluation.

Two measurements:

- the rate (images/s) of every ImageNet-C corruption of
  ``ImageCorruption`` at 32x32 (severity 3, one process), on
  ``--num-images`` images: CIFAR-10 test images when ``--image-root`` is a
  folder of PNG / JPEG files (read recursively), random images otherwise;
- with ``--config`` and ``--checkpoint``: the sweep of
  ``tools/test_robustness.py`` (by default all 15 corruptions x 5
  severities) run twice, cold (an empty ``--cache-dir``: the corrupted test
  set is written) and warm (the cache is read back; optionally with
  another checkpoint of the same model, ``--warm-checkpoint`` and
  ``--warm-config``), each in a fresh work dir. Reported: the wall time
  of each run, the time of its cells, the time of one clean test pass
  (measured by the tool the same way as a cell) and the ratio of the
  warm cells to 75 clean passes.

Example::

    OMP_NUM_THREADS=1 python benchmarks/benchmark_corruptions.py \
        --image-root data/cifar10/test --config CONFIG --checkpoint CKPT \
        --cache-dir /tmp/cifar10_c_cache --work-dir /tmp/robustness
"""
import argparse
import glob
import json
import os
import os.path as osp
import subprocess
import sys
import time

import mmcv
import numpy as np
import torch
from benchmark_utils import machine_info, markdown_table, write_json

from gradmix_plugin.datasets.transforms import CORRUPTIONS, ImageCorruption

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOL = osp.join(REPO, 'tools', 'test_robustness.py')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num-images', type=int, default=200)
    parser.add_argument(
        '--image-root', help='folder of test images (PNG / JPEG)')
    parser.add_argument('--config', help='config of the sweep')
    parser.add_argument('--checkpoint', help='checkpoint of the cold sweep')
    parser.add_argument(
        '--warm-checkpoint',
        help='checkpoint of the warm sweep (default: --checkpoint)')
    parser.add_argument(
        '--warm-config',
        help='config of the warm sweep (default: --config)')
    parser.add_argument('--cache-dir', help='an empty or new folder')
    parser.add_argument('--work-dir', help='work dirs of the two sweeps')
    parser.add_argument(
        '--tool-args',
        nargs=argparse.REMAINDER,
        default=[],
        help='more options of test_robustness.py (last)')
    parser.add_argument(
        '--quick',
        action='store_true',
        help='4 images per corruption (smoke test; numbers mean nothing)')
    parser.add_argument(
        '--out', default=osp.join(REPO, 'benchmarks', 'results',
                                  'corruptions.json'))
    return parser.parse_args()


def load_images(root: str, num: int) -> list:
    """``num`` BGR uint8 images: spread over the images under ``root``, or
    random 32x32 ones."""
    if root is None:
        rng = np.random.default_rng(0)
        return [rng.integers(0, 256, (32, 32, 3), np.uint8)
                for _ in range(num)]
    files = sorted(
        f for f in glob.glob(osp.join(root, '**', '*'), recursive=True)
        if f.lower().endswith(('.png', '.jpg', '.jpeg')))
    if len(files) < num:
        raise ValueError(f'--image-root {root!r} has {len(files)} images, '
                         f'fewer than --num-images {num}')
    files = files[::len(files) // num][:num]  # spread over the classes
    return [mmcv.imread(f) for f in files]


def corruption_rates(images: list) -> dict:
    """Images/s of every corruption at severity 3 (after one warm-up)."""
    rates = {}
    for corruption in CORRUPTIONS:
        transform = ImageCorruption(corruption, 3)
        transform.corrupt(images[0], 0)  # numba compilation, file reads
        start = time.perf_counter()
        for idx, image in enumerate(images):
            transform.corrupt(image, idx)
        rates[corruption] = len(images) / (time.perf_counter() - start)
    return rates


def run_sweep(args: argparse.Namespace, config: str, checkpoint: str,
              work_dir: str) -> dict:
    """One run of the tool in a subprocess: wall time and its results."""
    command = [
        sys.executable, TOOL, config, checkpoint, '--cache-dir',
        args.cache_dir, '--work-dir', work_dir, *args.tool_args
    ]
    start = time.perf_counter()
    completed = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if completed.returncode:
        raise RuntimeError(
            f'{" ".join(command)} failed:\n{completed.stderr[-3000:]}')
    with open(osp.join(work_dir, 'robustness.json')) as file:
        results = json.load(file)
    cells = [
        cell['seconds'] for by_severity in results['cells'].values()
        for cell in by_severity.values()
    ]
    return dict(
        command=command,
        wall_s=wall,
        cells=len(cells),
        cells_s=float(np.sum(cells)),
        clean_pass_s=results['clean']['seconds'],
        num_samples=results['num_samples'],
        mean_corruption_accuracy={
            m: s['mean_corruption_accuracy']
            for m, s in results['summary'].items()
        })


def main() -> None:
    args = parse_args()
    num = 4 if args.quick else args.num_images
    rates = corruption_rates(load_images(args.image_root, num))
    report = dict(
        machine=machine_info(torch.device('cpu')),
        settings=dict(
            num_images=num,
            image_root=args.image_root,
            severity=3,
            quick=args.quick),
        corruption_images_per_s=rates)
    print(markdown_table(['corruption', 'images/s'],
                         [[c, f'{r:.0f}'] for c, r in rates.items()]))
    if args.config:
        if os.listdir(args.cache_dir) if osp.isdir(args.cache_dir) else 0:
            raise ValueError(
                f'--cache-dir {args.cache_dir!r} is not empty: the cold '
                'sweep needs an empty cache')
        cold = run_sweep(args, args.config, args.checkpoint,
                         osp.join(args.work_dir, 'cold'))
        warm = run_sweep(args, args.warm_config or args.config,
                         args.warm_checkpoint or args.checkpoint,
                         osp.join(args.work_dir, 'warm'))
        ratio = warm['cells_s'] / (warm['cells'] * warm['clean_pass_s'])
        report['sweep'] = dict(
            cold=cold,
            warm=warm,
            warm_cells_over_clean_passes=ratio)
        print(
            markdown_table(
                ['run', 'cells', 'wall (s)', 'cells (s)', 'clean pass (s)'],
                [[name, r['cells'], f'{r["wall_s"]:.0f}',
                  f'{r["cells_s"]:.0f}', f'{r["clean_pass_s"]:.1f}']
                 for name, r in (('cold', cold), ('warm', warm))]))
        print(f'warm cells / (cells x clean pass): {ratio:.2f}x')
    write_json(report, args.out)


if __name__ == '__main__':
    main()
