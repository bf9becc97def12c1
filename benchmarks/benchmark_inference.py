"""Open-set inference cost: OSRInferencer next to mmpretrain's
ImageClassificationInferencer, and the detector's build time and size.

Side by side in one run, on the same model and the same in-memory 32x32
images, batch 64 (interleaved repetitions, median):

- ``digits``: the digits demo's narrow ResNet-18 (128-d features, 64-d
  embeddings) with a 6-class linear head, so that mmpretrain's inferencer
  has a classifier to run; the detector scores ``class_knn`` on the
  embeddings with a bank of the digits' 754 known training images;
- ``cifar``: the CIFAR-size ResNet-18 of ``configs/ce_resnet18_cifar10.py``
  (512-d features), ``class_knn`` on the features with a 50,000-vector
  bank (all CIFAR-10 training images; the 6-class OSR split has 30,000).

Random weights and images: the cost does not depend on them. The ratio
``osr / mmpretrain`` of the throughputs is the number to read.

Detector of a 50,000-image bank (512-d, 6 classes, 10% held out): the time
to fit the score and set the threshold (scoring the 5,000 held-out
vectors), the time to save, the file size in float32 and float16. The
feature extraction of those images is one forward pass per image at the
throughput measured above; the total is reported as that estimate plus the
measured rest.

Examples:
    OMP_NUM_THREADS=2 python benchmarks/benchmark_inference.py \
        --out benchmarks/results/inference.json
"""
import argparse
import os
import os.path as osp
import sys
import tempfile
import time
from functools import partial

import numpy as np
import torch
from mmengine.config import Config
from mmpretrain import ImageClassificationInferencer, get_model

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from benchmark_utils import (  # noqa: E402
    interleaved_timings,
    machine_info,
    markdown_table,
    summarize,
    time_call,
    write_json,
)

from gradmix_plugin.apis import OSRDetector, OSRInferencer  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CLASSES = tuple(f'class{c}' for c in range(6))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--num-images', type=int, default=512)
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument(
        '--bank-size',
        type=int,
        default=50000,
        help='bank of the CIFAR-size model and of the detector build')
    parser.add_argument(
        '--quick',
        action='store_true',
        help='16 images, 1 repetition, a 500-vector bank: a smoke test '
        '(its numbers mean nothing)')
    parser.add_argument('--out', help='results JSON')
    args = parser.parse_args()
    if args.quick:
        args.num_images, args.batch_size = 16, 8
        args.repeats, args.warmup, args.bank_size = 1, 0, 500
    return args


def _models(cifar_bank: int) -> dict:
    """name -> (model, feature key, bank size)."""
    digits = Config.fromfile(
        osp.join(REPO, 'configs', 'gradmix_resnet18_digits.py'))
    digits.model.head = dict(
        type='OSRLinearClsHead', num_classes=6, in_channels=128)
    cifar = Config.fromfile(
        osp.join(REPO, 'configs', 'ce_resnet18_cifar10.py'))
    torch.manual_seed(0)
    return dict(
        digits=(get_model(digits), 'embeds', 754),
        cifar=(get_model(cifar), 'feats', cifar_bank))


def _bank(size: int, dim: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return dict(
        vectors=rng.standard_normal((size, dim), np.float32),
        labels=np.arange(size) % len(CLASSES))


def add_ratios(entry: dict) -> dict:
    """OSR / mmpretrain throughput ratios of one model: of the medians
    (``ratio``), of the fastest runs (``ratio_min``: the least disturbed on
    a shared machine) and per repetition (``ratio_paired``: both
    inferencers ran back to back)."""
    osr, mmpretrain = entry['osr'], entry['mmpretrain']
    entry['ratio'] = osr['images_per_s'] / mmpretrain['images_per_s']
    entry['ratio_min'] = mmpretrain['min_s'] / osr['min_s']
    entry['ratio_paired'] = [
        m / o for m, o in zip(mmpretrain['samples_s'], osr['samples_s'])
    ]
    return entry


def throughput(args: argparse.Namespace) -> dict:
    rng = np.random.default_rng(0)
    images = [
        rng.integers(0, 256, (32, 32, 3), np.uint8)
        for _ in range(args.num_images)
    ]
    results = {}
    for name, (model, key, bank_size) in _models(args.bank_size).items():
        with torch.no_grad():
            probe = model.test_step(
                dict(inputs=[torch.zeros(3, 32, 32, dtype=torch.uint8)]))[0]
        bank = _bank(bank_size, probe.get(key).numel())
        detector = OSRDetector.from_outputs(
            'class_knn', {
                key: bank['vectors'],
                'labels': bank['labels'],
                'logits': np.zeros((bank_size, 6), np.float32)
            },
            CLASSES,
            feature=key,
            threshold=0.5)
        assert detector.scorer is not None  # fitted before the timings
        mmpretrain_inferencer = ImageClassificationInferencer(
            model, classes=CLASSES)
        osr_inferencer = OSRInferencer(model, detector=detector)

        def prepare(inferencer):
            return lambda: (
                lambda: inferencer(images, batch_size=args.batch_size))

        timings = interleaved_timings(
            dict(
                mmpretrain=prepare(mmpretrain_inferencer),
                osr=prepare(osr_inferencer)),
            args.repeats,
            args.warmup,
            torch.device('cpu'))
        entry = dict(bank_size=bank_size, feature=key,
                     feature_dim=int(bank['vectors'].shape[1]))
        for which, seconds in timings.items():
            stats = summarize(seconds)
            stats['images_per_s'] = args.num_images / stats['median_s']
            entry[which] = stats
        # The detector alone on the outputs of num_images images: the
        # open-set cost next to the forward pass, less exposed to the load
        # of a shared machine than the two end-to-end timings.
        query = {
            key: np.random.default_rng(1).standard_normal(
                (args.num_images, entry['feature_dim']), np.float32),
            'logits': np.zeros((args.num_images, 6), np.float32)
        }
        entry['detector_scoring'] = summarize([
            time_call(partial(detector.predict, query), torch.device('cpu'))
            for _ in range(args.repeats)
        ])
        add_ratios(entry)
        results[name] = entry
        print(f'{name}: mmpretrain '
              f'{entry["mmpretrain"]["images_per_s"]:.1f} img/s, osr '
              f'{entry["osr"]["images_per_s"]:.1f} img/s, ratio '
              f'{entry["ratio"]:.3f}', flush=True)
    return results


def detector_build(args: argparse.Namespace, images_per_s: float) -> dict:
    size, dim = args.bank_size, 512
    held_out = size // 10
    data = _bank(size, dim, seed=1)
    start = time.perf_counter()
    detector = OSRDetector.from_outputs(
        'class_knn',
        dict(feats=data['vectors'][held_out:],
             labels=data['labels'][held_out:]),
        CLASSES,
        val=dict(feats=data['vectors'][:held_out],
                 labels=data['labels'][:held_out]),
        feature='feats',
        tpr=0.95)
    fit_s = time.perf_counter() - start
    result = dict(bank_size=size - held_out, held_out=held_out,
                  feature_dim=dim, fit_and_threshold_s=fit_s)
    with tempfile.TemporaryDirectory() as folder:
        for dtype in ('float32', 'float16'):
            path = osp.join(folder, f'{dtype}.pth')
            start = time.perf_counter()
            detector.save(path, bank_dtype=dtype)
            result[f'save_{dtype}_s'] = time.perf_counter() - start
            result[f'size_{dtype}_mib'] = os.path.getsize(path) / 2**20
            start = time.perf_counter()
            assert OSRDetector.load(path).scorer is not None
            result[f'load_{dtype}_s'] = time.perf_counter() - start
    result['extraction_images_per_s'] = images_per_s
    result['extraction_estimate_s'] = size / images_per_s
    result['total_estimate_s'] = (
        result['extraction_estimate_s'] + fit_s + result['save_float32_s'])
    return result


def main() -> None:
    args = parse_args()
    results = dict(
        machine=machine_info(torch.device('cpu')),
        settings=vars(args),
        throughput=throughput(args))
    cifar_rate = results['throughput']['cifar']['mmpretrain']['images_per_s']
    results['detector_build'] = detector_build(args, cifar_rate)
    rows = [[
        name, entry['feature_dim'], entry['bank_size'],
        f'{entry["mmpretrain"]["images_per_s"]:.1f}',
        f'{entry["osr"]["images_per_s"]:.1f}', f'{entry["ratio"]:.2f}',
        f'{entry["ratio_min"]:.2f}',
        ' '.join(f'{r:.2f}' for r in entry['ratio_paired']),
        f'{entry["detector_scoring"]["min_s"]:.2f} s / '
        f'{entry["mmpretrain"]["min_s"]:.2f} s'
    ] for name, entry in results['throughput'].items()]
    print(markdown_table([
        'model', 'feature dim', 'bank', 'mmpretrain img/s (median)',
        'OSR img/s (median)', 'ratio of medians', 'ratio of fastest runs',
        'ratio per repetition', 'detector alone / forward (fastest)'
    ], rows))
    build = results['detector_build']
    print(markdown_table(['step', 'value'], [
        ['fit + threshold', f'{build["fit_and_threshold_s"]:.2f} s'],
        ['save float32', f'{build["save_float32_s"]:.2f} s, '
         f'{build["size_float32_mib"]:.1f} MiB'],
        ['save float16', f'{build["save_float16_s"]:.2f} s, '
         f'{build["size_float16_mib"]:.1f} MiB'],
        ['extraction (estimate)', f'{build["extraction_estimate_s"]:.0f} s'],
    ]))
    write_json(results, args.out)


if __name__ == '__main__':
    main()
