"""A real but tiny run of any config (``tools/train.py --smoke N``)."""
from typing import Any, Iterator

#: Epochs (or iterations, for iteration-based loops) of a smoke run.
SMOKE_EPOCHS = 2
SMOKE_ITERS = 20
_NESTED = ('dataset', 'datasets', 'id_dataset', 'ood_datasets',
           'unknown_dataset')


def _dataset_nodes(node: Any, inside_osr: bool = False) -> Iterator[tuple]:
    """``(dataset dict, inside an OSRDataset)`` of a dataset config and
    of every dataset nested in it."""
    if isinstance(node, (list, tuple)):
        for item in node:
            yield from _dataset_nodes(item, inside_osr)
        return
    if not isinstance(node, dict):
        return
    yield node, inside_osr
    is_osr = node.get('type') == 'OSRDataset'
    for key in _NESTED:
        if key in node:
            yield from _dataset_nodes(node[key], inside_osr or is_osr)


def _is_leaf(node: dict) -> bool:
    return not any(key in node for key in _NESTED)


def apply_smoke(cfg: Any, num: int) -> None:
    """Shrink a config to a smoke run: at most ``num`` samples per class.

    Every ``OSRDataset`` (training, validation, test and the kNN bank of
    ``OSRBankHook``) keeps at most ``num`` samples per class
    (``max_per_class``); every other dataset outside an ``OSRDataset``
    (e.g. the sets of an ``OODDataset``) its first ``num`` samples
    (``indices``). Training runs for at most 2 epochs (20 iterations for
    iteration-based loops), with a checkpoint and a validation at the end,
    and the kNN scores' ``knn_k`` / ``class_knn_k`` are capped at ``num``
    so that the small bank suffices.

    Args:
        cfg (Config | dict): The config, updated in place.
        num (int): Samples per class, at least 1.

    Raises:
        ValueError: ``num`` is not a positive integer.
    """
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise ValueError(
            f'--smoke needs a positive number of samples per class, got '
            f'{num!r}')
    loaders = [cfg.get(key) for key in ('train_dataloader', 'val_dataloader',
                                        'test_dataloader')]
    loaders += [
        hook.get('dataloader') for hook in cfg.get('custom_hooks') or []
        if isinstance(hook, dict)
    ]
    for loader in loaders:
        if not isinstance(loader, dict):
            continue
        for node, inside_osr in _dataset_nodes(loader.get('dataset')):
            if node.get('type') == 'OSRDataset':
                node['max_per_class'] = min(
                    node.get('max_per_class') or num, num)
            elif not inside_osr and _is_leaf(node):
                node['indices'] = num
    train_cfg = cfg.get('train_cfg')
    if isinstance(train_cfg, dict):
        for key, cap in (('max_epochs', SMOKE_EPOCHS),
                         ('max_iters', SMOKE_ITERS)):
            if key in train_cfg:
                train_cfg[key] = min(train_cfg[key], cap)
                if 'val_interval' in train_cfg:
                    train_cfg['val_interval'] = train_cfg[key]
                checkpoint = (cfg.get('default_hooks') or {}).get(
                    'checkpoint')
                if isinstance(checkpoint, dict):
                    checkpoint['interval'] = train_cfg[key]
    for key in ('val_evaluator', 'test_evaluator'):
        evaluator = cfg.get(key)
        metrics = evaluator if isinstance(evaluator, list) else [evaluator]
        for metric in metrics:
            if isinstance(metric, dict) and metric.get('type') == 'OSRMetric':
                for option, default in (('knn_k', 50), ('class_knn_k', 3)):
                    metric[option] = min(metric.get(option, default), num)
