"""Checks that need the built datasets, before the first iteration."""
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
from mmengine.hooks import Hook
from mmengine.runner import BaseLoop
from mmpretrain.registry import HOOKS


class DataCheckError(ValueError):
    """The data or schedule cannot give a meaningful run."""


def _labels(dataset) -> Optional[np.ndarray]:
    get = getattr(dataset, 'get_gt_labels', None)
    if get is None:
        return None
    try:
        return np.asarray(get(), dtype=np.int64).reshape(-1)
    except Exception:  # a dataset without labels (e.g. unlabelled views)
        return None


def _class_names(dataset) -> List[str]:
    return list((getattr(dataset, 'metainfo', None) or {}).get('classes')
                or [])


def _osr_metrics(runner) -> Iterator[Tuple[str, object]]:
    """The ``OSRMetric`` s of the loops the runner has built."""
    from ...evaluation import OSRMetric
    for name in ('_val_loop', '_test_loop'):
        loop = getattr(runner, name, None)
        evaluator = getattr(loop, 'evaluator', None)
        if not isinstance(loop, BaseLoop) or evaluator is None:
            continue
        for metric in evaluator.metrics:
            if isinstance(metric, OSRMetric):
                yield name.strip('_').replace('_loop', '_evaluator'), metric


def _knn_needs(metric) -> Dict[str, int]:
    """``{'knn': k, 'class_knn': k}`` for the kNN scores ``metric`` uses."""
    needs = {}
    specs = getattr(metric, 'score_specs', None) or {
        name: {}
        for name in getattr(metric, 'scores', ())
    }
    for name, spec in specs.items():
        kind = (spec or {}).get('type', name) if isinstance(spec,
                                                            dict) else name
        kind = str(kind).lower().replace('score', '').strip('_')
        if kind in ('knn', 'class_knn'):
            default = metric.knn_k if kind == 'knn' else metric.class_knn_k
            k = (spec or {}).get('k', default) if isinstance(spec,
                                                             dict) else default
            needs[kind] = max(needs.get(kind, 0), int(k))
    return needs


@HOOKS.register_module()
class FailFastHook(Hook):
    """Refuse, before the first iteration, what would otherwise fail (or
    mean nothing) only after a whole epoch.

    * ``train_cfg.max_epochs`` / ``max_iters`` of 0 or less: nothing would
      be trained, and the run used to end with exit code 0.
    * A known class without training samples (e.g. an empty class folder).
    * A kNN bank (``OSRBankHook``) smaller than a kNN score's ``k``:
      ``knn`` needs at least ``knn_k`` vectors, ``class_knn`` at least
      ``class_knn_k`` per known class.

    The OSR runner adds it to every run.
    """

    priority = 'LOW'  # after OSRBankHook has built its loader

    def before_train(self, runner) -> None:
        """Check the schedule, the training set and the bank."""
        loop = runner.train_loop
        for key in ('max_epochs', 'max_iters'):
            value = getattr(loop, key, None)
            if key in (runner.cfg.get('train_cfg') or {}) and value is not \
                    None and value <= 0:
                raise DataCheckError(
                    f'train_cfg.{key} is {value}: nothing would be trained. '
                    f'Set train_cfg.{key} to a positive number.')
        dataset = runner.train_dataloader.dataset
        labels, names = _labels(dataset), _class_names(dataset)
        if labels is not None and names and len(labels) and \
                labels.min() >= 0:
            counts = np.bincount(labels, minlength=len(names))
            empty = [names[i] for i in np.flatnonzero(counts == 0)
                     if i < len(names)]
            if empty:
                raise DataCheckError(
                    f'the training set ({type(dataset).__name__}) has no '
                    f'sample of the known class(es) {empty}: check the data '
                    'folder of each (an empty or misnamed folder) or the '
                    'known classes of the config.')
        self._check_bank(runner)

    def before_test(self, runner) -> None:
        """Check the bank."""
        self._check_bank(runner)

    @staticmethod
    def _check_bank(runner) -> None:
        from .osr_bank_hook import OSRBankHook
        hook = next((h for h in runner.hooks if isinstance(h, OSRBankHook)),
                    None)
        loader = getattr(hook, '_loader', None)
        if loader is None:
            return
        labels = _labels(loader.dataset)
        if labels is None:
            return
        names = _class_names(loader.dataset)
        num_classes = max(len(names), int(labels.max(initial=-1)) + 1)
        counts = np.bincount(labels[labels >= 0], minlength=num_classes)
        for where, metric in _osr_metrics(runner):
            needs = _knn_needs(metric)
            k = needs.get('knn')
            if k is not None and len(labels) < k:
                raise DataCheckError(
                    f'{where}: knn_k={k} is larger than the kNN bank of '
                    f'OSRBankHook ({len(labels)} samples): lower knn_k (at '
                    f'most {len(labels)}) or enlarge the bank.')
            k = needs.get('class_knn')
            small = np.flatnonzero(counts < k) if k is not None else []
            if len(small):
                which = ', '.join(
                    f'{names[i] if i < len(names) else i}: {counts[i]}'
                    for i in small[:10])
                raise DataCheckError(
                    f'{where}: class_knn needs at least class_knn_k={k} '
                    f'bank vectors per known class, but the bank of '
                    f'OSRBankHook has fewer for {which}: check those '
                    'classes\' training data (an empty folder?), enlarge '
                    'the bank (OSRBankHook max_samples) or lower '
                    'class_knn_k.')
