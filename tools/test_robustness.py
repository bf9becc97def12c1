"""Accuracy of a checkpoint under common corruptions, per corruption and
severity.

For every corruption x severity cell the known-class test samples are
corrupted and classified twice: by the classifier head (closed-set
``accuracy``, when the model has logits) and by the class-wise kNN against
the clean known training bank (``class_knn_accuracy``, the prediction the
GradMix authors report; the bank is the config's ``OSRBankHook`` loader,
built once), each through the runner's model (``test_step``) and the
config's ``OSRMetric`` restricted to ``class_knn``. The images come from
one of two sources, recorded in the results:

- ``imagecorruptions`` (default): corrupted on the fly by the
  ``ImageCorruption`` transform (ImageNet-C parameters, seeded per sample),
  inserted before ``PackInputs`` in the test pipeline. With ``--cache-dir``
  the corrupted known test set is written once in the CIFAR-10-C layout
  (``<corruption>.npy`` with the 5 severities, ``labels.npy``), so later
  checkpoints are evaluated at forward-pass speed.
- ``cifar_c_files`` (``--c-root``): the published CIFAR-10-C /
  CIFAR-100-C arrays, whose corruption parameters differ (tuned for 32x32).

Writes into the work dir ``robustness.json`` (every cell, the clean
accuracy, means, provenance; finished cells are read back and skipped on a
rerun), ``robustness.csv`` and ``robustness_heatmap.png``, and logs the
tables. With ``--baseline other/robustness.json`` it adds the corruption
errors of Hendrycks & Dietterich (2019):
``CE_c = sum_s err(c, s) / sum_s err_baseline(c, s)`` and their mean, mCE.

Examples:
    python tools/test_robustness.py configs/ce_resnet18_cifar10.py \
        work_dirs/ce/epoch_600.pth --cache-dir /tmp/cifar10_c_cache
    python tools/test_robustness.py CONFIG CKPT --c-root data/CIFAR-10-C \
        --corruptions fog snow --severities 3 5 --baseline ce/robustness.json
"""
import argparse
import copy
import csv
import json
import logging
import os
import os.path as osp
import time
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.evaluator import Evaluator
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from mmengine.utils import ProgressBar
from mmpretrain.registry import DATASETS, RUNNERS
from mmpretrain.registry import METRICS as METRIC_REGISTRY
from torch.utils.data import Subset

from gradmix_plugin.datasets import CIFAR10C
from gradmix_plugin.datasets.cifar_c import LABELS_FILE, cifar_c_file
from gradmix_plugin.datasets.transforms import (
    CORRUPTIONS,
    SEVERITIES,
    check_corruption,
)
from gradmix_plugin.engine.hooks import OSRBankHook
from gradmix_plugin.evaluation import OSRMetric
from gradmix_plugin.utils import (
    add_runner_args,
    collect_provenance,
    dataset_provenance,
    iter_dicts,
    merge_test_args,
    parse_runner_args,
    read_config,
    safe_checkpoint_loading,
)

RESULTS_FILE = 'robustness.json'
CSV_FILE = 'robustness.csv'
HEATMAP_FILE = 'robustness_heatmap.png'
CACHE_INFO_FILE = 'cache_info.json'
#: Images corrupted by ``ImageCorruption`` (ImageNet-C parameters).
SOURCE_ON_THE_FLY = 'imagecorruptions'
#: The published CIFAR-10-C / CIFAR-100-C arrays (``--c-root``).
SOURCE_FILES = 'cifar_c_files'
#: Reported accuracies (percent): the head's and the class-wise kNN's.
METRICS = ('accuracy', 'class_knn_accuracy')
METRIC_NAMES = dict(
    accuracy='head accuracy', class_knn_accuracy='class-wise kNN accuracy')
#: Entries of robustness.json that must match for its cells to be reused.
IDENTITY_KEYS = ('source', 'c_root', 'corruption_seed', 'max_samples',
                 'checkpoint_sha256', 'dataset_type', 'data_root',
                 'protocol', 'split', 'known_classes')


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Accuracy under common corruptions (ImageNet-C '
        'corruptions on the fly, or CIFAR-10-C files)')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--corruptions',
        nargs='+',
        default=list(CORRUPTIONS),
        help='corruption names (default: the 15 benchmark corruptions)')
    parser.add_argument(
        '--severities',
        nargs='+',
        type=int,
        default=list(SEVERITIES),
        help='severities, 1..5 (default: all)')
    parser.add_argument(
        '--c-root',
        help='read the published CIFAR-10-C / CIFAR-100-C arrays from this '
        'folder instead of corrupting on the fly')
    parser.add_argument(
        '--cache-dir',
        help='write the corrupted known test set here once (CIFAR-10-C '
        'layout, all 5 severities of each corruption) and read it back')
    parser.add_argument(
        '--max-samples',
        type=int,
        help='evaluate a fixed random subset of this many known test '
        'samples (seed 0)')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='base seed of the corruptions (default 0)')
    parser.add_argument(
        '--baseline',
        help='robustness.json of a baseline run: adds CE and mCE')
    parser.add_argument(
        '--work-dir', help='the dir of robustness.json/.csv and the heatmap')
    parser.add_argument(
        '--allow-mismatch',
        action='store_true',
        help='go on when the checkpoint records another protocol, split or '
        'dataset than the config (a warning instead of an error)')
    add_runner_args(parser)
    args = parse_runner_args(parser)
    check_args(args)
    return args


def check_args(args: argparse.Namespace) -> None:
    """Refuse bad options before any heavy work."""
    for corruption in args.corruptions:
        check_corruption(corruption, SEVERITIES[0])
    for severity in args.severities:
        check_corruption(args.corruptions[0], severity)
    if args.c_root is not None and args.cache_dir is not None:
        raise ValueError(
            '--c-root reads published files and --cache-dir writes '
            'corrupted ones: give one of them, not both')
    if args.c_root is not None:
        for corruption in args.corruptions:
            if not osp.isfile(cifar_c_file(args.c_root, corruption)):
                raise FileNotFoundError(
                    f'--c-root {args.c_root!r} has no {corruption}.npy')
    if args.max_samples is not None and args.max_samples < 1:
        raise ValueError(
            f'--max-samples must be a positive integer, got '
            f'{args.max_samples}')
    if args.launcher != 'none':
        raise ValueError(
            f'test_robustness.py runs in one process; --launcher '
            f'{args.launcher!r} is not supported')
    if args.baseline is not None and not osp.isfile(args.baseline):
        raise FileNotFoundError(f'--baseline {args.baseline!r} not found')


def _log(message: str, level: int = logging.INFO) -> None:
    print_log(message, logger='current', level=level)


class TestData:
    """The known-class test samples of a config, clean or corrupted.

    Args:
        cfg (Config): The prepared config.
        max_samples (int, optional): Keep a fixed random subset (seed 0).
        seed (int): Base seed of the corruptions.
    """

    def __init__(self, cfg: Config, max_samples: Optional[int],
                 seed: int) -> None:
        self.cfg = cfg
        self.seed = seed
        dataset = copy.deepcopy(cfg.test_dataloader.dataset)
        if dataset.get('type') == 'OSRDataset':
            dataset.update(subset='known', unknown_dataset=None)
            self.osr_cfg, self.inner_cfg = dataset, dataset.pop('dataset')
            if self.osr_cfg.get('pipeline'):
                # The wrapper's pipeline runs on the wrapped samples: it is
                # the one to corrupt.
                self.inner_cfg = dict(
                    self.inner_cfg, pipeline=self.osr_cfg.pop('pipeline'))
        else:
            self.osr_cfg, self.inner_cfg = None, dataset
        pipeline = list(self.inner_cfg.get('pipeline') or [])
        types = [t.get('type') for t in pipeline]
        if 'PackInputs' not in types:
            raise ValueError(
                'the test pipeline has no PackInputs; the corruption is '
                'applied just before it')
        pack = len(types) - 1 - types[::-1].index('PackInputs')
        self.before_pack, self.after_pack = pipeline[:pack], pipeline[pack:]
        loads = [t for t in self.before_pack
                 if t.get('type') == 'LoadImageFromFile']
        # mmcv's LoadImageFromFile gives BGR; in-memory datasets keep RGB.
        self.channel_order = 'bgr' if loads else 'rgb'
        self.files_pipeline = [t for t in pipeline if t not in loads]

        self._clean = clean = self._wrap(self.inner_cfg)
        self.classes = clean.dataset.metainfo['classes'] \
            if self.osr_cfg is not None else clean.metainfo['classes']
        self.known_class_ids = list(
            clean.metainfo.get('known_class_ids') or
            range(len(clean.metainfo['classes'])))
        self.indices = None
        if max_samples is not None and max_samples < len(clean):
            self.indices = np.sort(
                np.random.default_rng(0).choice(
                    len(clean), max_samples, replace=False)).tolist()
        self.num_samples = len(self._subset(clean))

    def _wrap(self, inner: dict):
        # One process reads it: no serialisation (and its gc.collect).
        inner = dict(inner, serialize_data=False)
        if self.osr_cfg is None:
            return DATASETS.build(inner)
        return DATASETS.build(dict(self.osr_cfg, dataset=inner))

    def _subset(self, dataset):
        return dataset if self.indices is None else Subset(
            dataset, self.indices)

    def clean(self):
        """The clean known test samples."""
        return self._subset(self._clean)

    def on_the_fly(self, corruption: str, severity: int):
        """The known test samples corrupted by ``ImageCorruption``."""
        corrupt = dict(
            type='ImageCorruption',
            corruption=corruption,
            severity=severity,
            channel_order=self.channel_order,
            seed=self.seed)
        inner = dict(
            self.inner_cfg,
            pipeline=self.before_pack + [corrupt] + self.after_pack)
        return self._subset(self._wrap(inner))

    def from_files(self, root: str, corruption: str, severity: int,
                   cached: bool):
        """Samples of CIFAR-10-C style files: the cache written by
        :meth:`write_cache` (already through the pipeline up to
        ``PackInputs``) or published files (the pipeline minus
        ``LoadImageFromFile``; the same subset of indices)."""
        inner = dict(
            type=CIFAR10C.__name__,
            data_root=root,
            corruption=corruption,
            severity=severity,
            channel_order=self.channel_order,
            metainfo=dict(classes=self.classes),
            pipeline=self.after_pack if cached else self.files_pipeline)
        dataset = self._wrap(inner)
        if cached:
            return dataset
        if len(dataset) != len(self._clean):
            raise ValueError(
                f'{cifar_c_file(root, corruption)} holds {len(dataset)} '
                f'known samples per severity, the test set of the config '
                f'{len(self._clean)}: the files are of another test set')
        return self._subset(dataset)

    def cache_info(self) -> dict:
        """What a cache must have been written from to be reused."""
        return dict(
            source=SOURCE_ON_THE_FLY,
            corruption_seed=self.seed,
            num_samples=self.num_samples,
            indices=self.indices,
            data=dataset_provenance(self.cfg, 'test_dataloader'),
            pipeline=[dict(t) for t in self.before_pack],
            channel_order_stored='rgb')

    def write_cache(self, cache_dir: str, corruption: str) -> None:
        """Write ``<corruption>.npy`` (all severities) and ``labels.npy``
        unless they exist; refuse a cache written from other data."""
        os.makedirs(cache_dir, exist_ok=True)
        info_file = osp.join(cache_dir, CACHE_INFO_FILE)
        info = json.loads(json.dumps(self.cache_info()))
        if osp.isfile(info_file):
            with open(info_file) as file:
                recorded = json.load(file)
            differ = _differing_keys(recorded, info)
            if differ:
                raise ValueError(
                    f'--cache-dir {cache_dir!r} was written from other test '
                    f'data or settings (differing: {", ".join(differ)}); '
                    'use another --cache-dir')
        else:
            _write_json(info_file, info)
        images_file = cifar_c_file(cache_dir, corruption)
        if osp.isfile(images_file):
            return
        start = time.perf_counter()
        blocks, labels = [], None
        for severity in SEVERITIES:
            images, labels = self._corrupted_arrays(corruption, severity)
            blocks.append(images)
        labels_file = osp.join(cache_dir, LABELS_FILE)
        labels = np.tile(labels, len(SEVERITIES))
        if not osp.isfile(labels_file):
            _save_npy(labels_file, labels)
        _save_npy(images_file, np.concatenate(blocks))
        _log(f'cached {corruption}: {len(SEVERITIES)} x {self.num_samples} '
             f'images in {time.perf_counter() - start:.1f} s '
             f'({images_file})')

    def _corrupted_arrays(self, corruption: str,
                          severity: int) -> Tuple[np.ndarray, np.ndarray]:
        """Corrupted RGB HxWx3 images and original class ids."""
        loader = build_loader(self.cfg,
                              self.on_the_fly(corruption, severity))
        images, labels = [], []
        for batch in loader:
            for inputs, sample in zip(batch['inputs'],
                                      batch['data_samples']):
                image = inputs.permute(1, 2, 0).numpy()
                if self.channel_order == 'bgr':
                    image = image[..., ::-1]
                images.append(image)
                labels.append(self.known_class_ids[int(sample.gt_label)])
        return np.stack(images).astype(np.uint8), np.array(labels, np.int64)


def _differing_keys(recorded: dict, current: dict) -> List[str]:
    """Keys whose values differ; of nested dicts (the data provenance,
    whose entries may grow with the plugin), only the common keys count."""
    differ = []
    for key in sorted(set(recorded) | set(current)):
        old, new = recorded.get(key), current.get(key)
        if isinstance(old, dict) and isinstance(new, dict):
            differ += [
                f'{key}.{k}' for k in _differing_keys(
                    {k: old[k] for k in old if k in new},
                    {k: new[k] for k in new if k in old})
            ]
        elif old != new:
            differ.append(key)
    return differ


def _save_npy(path: str, array: np.ndarray) -> None:
    tmp = path + '.tmp.npy'
    np.save(tmp, array)
    os.replace(tmp, path)


def _write_json(path: str, record: dict) -> None:
    tmp = path + '.tmp'
    with open(tmp, 'w') as file:
        json.dump(record, file, indent=2)
    os.replace(tmp, path)


def build_loader(cfg: Config, dataset):
    """A loader of ``dataset`` with the test loader's settings."""
    loader_cfg = copy.deepcopy(cfg.test_dataloader)
    loader_cfg.pop('dataset')
    loader_cfg.update(
        dataset=dataset,
        persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False))
    return Runner.build_dataloader(loader_cfg, seed=0)


def cell_evaluator(cfg: Config, clean: OSRMetric) -> Evaluator:
    """An evaluator of the config's ``OSRMetric`` restricted to the
    class-wise kNN score, with the clean bank of ``clean``.

    Args:
        cfg (Config): The prepared config (its ``test_evaluator``).
        clean (OSRMetric): The built metric of the test evaluator, given
            the clean training bank by ``OSRBankHook``.

    Returns:
        Evaluator: mmengine's evaluator of one ``OSRMetric``.
    """
    spec = next(d for d in iter_dicts(cfg.test_evaluator)
                if d.get('type') in ('OSRMetric', OSRMetric))
    score = [
        s for s in spec.get('scores') or ()
        if (s if isinstance(s, str) else s.get('name', s.get('type'))) ==
        'class_knn'
    ] or ['class_knn']
    metric = METRIC_REGISTRY.build(dict(spec, scores=score))
    metric.set_bank(clean.bank, clean.bank_labels)
    return Evaluator(metric)


def evaluate(model: torch.nn.Module, loader, evaluator: Evaluator
             ) -> Dict[str, Optional[float]]:
    """Head and class-wise kNN accuracies (percent) on a loader of known
    samples, by the model's ``test_step`` and the ``OSRMetric`` of
    :func:`cell_evaluator`."""
    has_logits = False
    model.eval()
    with torch.no_grad():
        for batch in loader:
            outputs = model.test_step(batch)
            has_logits = has_logits or any('logits' in o for o in outputs)
            evaluator.process(data_samples=outputs, data_batch=batch)
    with warnings.catch_warnings():
        # Known samples only: the open-set metrics are NaN, as intended.
        warnings.simplefilter('ignore', UserWarning)
        metrics = evaluator.evaluate(len(loader.dataset))
    prefix = evaluator.metrics[0].prefix
    return dict(
        accuracy=metrics[f'{prefix}/accuracy'] if has_logits else None,
        class_knn_accuracy=metrics.get(f'{prefix}/class_knn/accuracy'))


def load_results(path: str, identity: dict) -> dict:
    """The results of an earlier run with the same identity, or a new
    record."""
    if not osp.isfile(path):
        return dict(identity, clean=None, cells={})
    with open(path) as file:
        results = json.load(file)
    differ = [
        f'{key}: {results.get(key)!r} there, {identity[key]!r} now'
        for key in IDENTITY_KEYS if results.get(key) != identity[key]
    ]
    if differ:
        raise ValueError(
            f'{path} holds results of another run ({"; ".join(differ)}); '
            'pass another --work-dir or delete the file')
    results.update(identity)
    return results


def summarize(cells: Dict[str, Dict[str, dict]], corruptions: Sequence[str],
              severities: Sequence[int], metric: str) -> dict:
    """Per-corruption and per-severity means, and the mean corruption
    accuracy over all cells, of one metric."""
    table = np.array([[cells[c][str(s)][metric] for s in severities]
                      for c in corruptions], dtype=np.float64)
    return dict(
        per_corruption=dict(zip(corruptions, table.mean(axis=1).tolist())),
        per_severity={
            str(s): v
            for s, v in zip(severities, table.mean(axis=0).tolist())
        },
        mean_corruption_accuracy=float(table.mean()))


def corruption_errors(cells: Dict[str, Dict[str, dict]], baseline: dict,
                      corruptions: Sequence[str], severities: Sequence[int],
                      metric: str, baseline_path: str) -> dict:
    """``CE_c = sum_s (100 - acc) / sum_s (100 - acc_baseline)`` and mCE.

    Raises:
        ValueError: The baseline lacks a cell or the metric.
    """
    ce = {}
    for corruption in corruptions:
        errors, base_errors = 0.0, 0.0
        for severity in severities:
            base = (baseline.get('cells') or {}).get(corruption, {}).get(
                str(severity))
            if base is None or base.get(metric) is None:
                raise ValueError(
                    f'--baseline {baseline_path} has no {metric} for '
                    f'{corruption} at severity {severity}; run it with the '
                    'same corruptions and severities')
            errors += 100.0 - cells[corruption][str(severity)][metric]
            base_errors += 100.0 - base[metric]
        ce[corruption] = (errors / base_errors if base_errors > 0 else
                          float('nan'))
    return dict(ce=ce, mce=float(np.mean(list(ce.values()))))


def format_table(results: dict, metric: str, corruptions: Sequence[str],
                 severities: Sequence[int]) -> str:
    """One metric as a text table: a row per corruption, a column per
    severity, the means and the CE when a baseline is given."""
    summary = results['summary'][metric]
    ce = (results.get('baseline') or {}).get(metric)
    header = ['corruption'] + [f's{s}' for s in severities] + ['mean']
    if ce:
        header.append('CE')
    rows = [header]
    for c in corruptions:
        row = [c] + [
            f'{results["cells"][c][str(s)][metric]:.2f}' for s in severities
        ] + [f'{summary["per_corruption"][c]:.2f}']
        if ce:
            row.append(f'{ce["ce"][c]:.3f}')
        rows.append(row)
    mean_row = ['mean'] + [
        f'{summary["per_severity"][str(s)]:.2f}' for s in severities
    ] + [f'{summary["mean_corruption_accuracy"]:.2f}']
    if ce:
        mean_row.append(f'{ce["mce"]:.3f}')
    rows.append(mean_row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        '  '.join(v.ljust(w) if i == 0 else v.rjust(w)
                  for i, (v, w) in enumerate(zip(row, widths)))
        for row in rows
    ]
    clean = (results.get('clean') or {}).get(metric)
    title = f'{METRIC_NAMES[metric]} (%)' + (
        '' if clean is None else f', clean {clean:.2f}')
    return '\n'.join([title] + lines)


def write_csv(path: str, results: dict, metrics: Sequence[str],
              corruptions: Sequence[str], severities: Sequence[int]) -> None:
    """A row per metric and corruption: the severities, mean and CE."""
    with open(path, 'w', newline='') as file:
        writer = csv.writer(file)
        writer.writerow(['metric', 'corruption'] +
                        [f'severity_{s}' for s in severities] +
                        ['mean', 'ce'])
        for metric in metrics:
            summary = results['summary'][metric]
            ce = (results.get('baseline') or {}).get(metric)
            for c in corruptions:
                writer.writerow(
                    [metric, c] +
                    [results['cells'][c][str(s)][metric]
                     for s in severities] +
                    [summary['per_corruption'][c],
                     ce['ce'][c] if ce else ''])
            writer.writerow(
                [metric, 'mean'] +
                [summary['per_severity'][str(s)] for s in severities] +
                [summary['mean_corruption_accuracy'],
                 ce['mce'] if ce else ''])


def plot_heatmap(path: str, results: dict, metrics: Sequence[str],
                 corruptions: Sequence[str], severities: Sequence[int],
                 title: str) -> None:
    """One heatmap per metric: corruption x severity, plus the means."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1,
        len(metrics),
        figsize=(1.0 + 0.9 * (len(severities) + 1) * len(metrics) + 2.5,
                 1.2 + 0.38 * (len(corruptions) + 1)),
        squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        summary = results['summary'][metric]
        table = np.array(
            [[results['cells'][c][str(s)][metric] for s in severities] +
             [summary['per_corruption'][c]] for c in corruptions] +
            [[summary['per_severity'][str(s)] for s in severities] +
             [summary['mean_corruption_accuracy']]])
        image = ax.imshow(table, cmap='viridis', vmin=0, vmax=100,
                          aspect='auto')
        for (i, j), value in np.ndenumerate(table):
            ax.text(j, i, f'{value:.1f}', ha='center', va='center',
                    fontsize=7, color='white' if value < 60 else 'black')
        ax.set_xticks(range(len(severities) + 1),
                      [str(s) for s in severities] + ['mean'])
        ax.set_yticks(range(len(corruptions) + 1),
                      list(corruptions) + ['mean'])
        ax.set_xlabel('severity')
        clean = (results.get('clean') or {}).get(metric)
        ax.set_title(f'{METRIC_NAMES[metric]} (%)' +
                     ('' if clean is None else f'\nclean {clean:.1f}'),
                     fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.05)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    args = parse_args()
    runner = RUNNERS.build(
        merge_test_args(read_config(args.config), args))
    runner.check_before_test()
    cfg = runner.cfg  # with the config rules of OSRRunner applied
    model = runner.model.module if is_model_wrapper(runner.model) \
        else runner.model

    provenance = collect_provenance(cfg, 'test_dataloader', args.checkpoint)
    data = TestData(cfg, args.max_samples, args.seed)
    source = SOURCE_FILES if args.c_root else SOURCE_ON_THE_FLY
    identity = dict(
        source=source,
        c_root=None if args.c_root is None else osp.abspath(args.c_root),
        corruption_seed=None if args.c_root else args.seed,
        max_samples=args.max_samples,
        **{k: provenance[k] for k in IDENTITY_KEYS if k in provenance})
    results_file = osp.join(cfg.work_dir, RESULTS_FILE)
    results = load_results(results_file, identity)
    results.update(
        provenance=provenance,
        num_samples=data.num_samples,
        cache_dir=None if args.cache_dir is None else osp.abspath(
            args.cache_dir))
    cells = results['cells']
    todo = [(c, s) for c in args.corruptions for s in args.severities
            if str(s) not in cells.get(c, {})]
    _log(f'{len(todo)} of {len(args.corruptions) * len(args.severities)} '
         f'cells to evaluate ({data.num_samples} known test samples, '
         f'source {source})')

    if todo or results.get('clean') is None:
        with safe_checkpoint_loading():
            runner.load_or_resume()
        hook = next((h for h in runner.hooks if isinstance(h, OSRBankHook)),
                    None)
        if hook is None:
            raise ValueError(
                f'{args.config} has no OSRBankHook in custom_hooks: the '
                'class-wise kNN accuracy needs the clean training bank')
        # Building the test loop builds the config's test evaluator, whose
        # OSRMetric receives the clean bank (built once) from the hook.
        evaluator = runner.test_loop.evaluator
        hook.before_test_epoch(runner)
        cell_eval = cell_evaluator(
            cfg,
            next(m for m in evaluator.metrics if isinstance(m, OSRMetric)))
    if results.get('clean') is None:
        start = time.perf_counter()
        results['clean'] = evaluate(model,
                                    build_loader(cfg, data.clean()),
                                    cell_eval)
        results['clean']['seconds'] = time.perf_counter() - start
        _write_json(results_file, results)
    progress = ProgressBar(len(todo)) if todo else None
    for corruption, severity in todo:
        start = time.perf_counter()
        if args.c_root:
            dataset = data.from_files(args.c_root, corruption, severity,
                                      cached=False)
        elif args.cache_dir:
            data.write_cache(args.cache_dir, corruption)
            dataset = data.from_files(args.cache_dir, corruption, severity,
                                      cached=True)
        else:
            dataset = data.on_the_fly(corruption, severity)
        cell = evaluate(model, build_loader(cfg, dataset), cell_eval)
        cell.update(
            num_samples=len(dataset),
            source=source,
            from_cache=bool(args.cache_dir),
            seconds=time.perf_counter() - start)
        cells.setdefault(corruption, {})[str(severity)] = cell
        _write_json(results_file, results)
        progress.update()
        _log(f'{corruption} severity {severity}: ' + ', '.join(
            f'{METRIC_NAMES[m]} {cell[m]:.2f}' for m in METRICS
            if cell[m] is not None) + f' ({cell["seconds"]:.1f} s)')

    metrics = [m for m in METRICS if results['clean'].get(m) is not None]
    results['summary'] = {
        m: summarize(cells, args.corruptions, args.severities, m)
        for m in metrics
    }
    results['baseline'] = None
    if args.baseline:
        with open(args.baseline) as file:
            baseline = json.load(file)
        results['baseline'] = dict(
            path=osp.abspath(args.baseline),
            **{
                m: corruption_errors(cells, baseline, args.corruptions,
                                     args.severities, m, args.baseline)
                for m in metrics
            })
    _write_json(results_file, results)
    write_csv(
        osp.join(cfg.work_dir, CSV_FILE), results, metrics,
        args.corruptions, args.severities)
    plot_heatmap(
        osp.join(cfg.work_dir, HEATMAP_FILE), results, metrics,
        args.corruptions, args.severities,
        f'{osp.basename(args.config)}, '
        f'{osp.join(*args.checkpoint.split(osp.sep)[-2:])}: {source}, '
        f'{data.num_samples} known test samples')
    for m in metrics:
        _log(format_table(results, m, args.corruptions, args.severities))
    _log(f'wrote {results_file}, {CSV_FILE} and {HEATMAP_FILE}')


if __name__ == '__main__':
    main()
