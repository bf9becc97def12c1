"""Rules that make a value given once take effect everywhere it should.

mmengine substitutes base variables when a config file is parsed, so a
top-level ``data_root`` or ``osr_split`` changed later (a child config, or
``--cfg-options``) would not reach the nested keys that were filled from
it. The tools apply these rules after merging the command line:

- ``osr_split`` is copied into the ``split`` of every ``OSRDataset``;
- a top-level ``data_root`` is copied into every dataset that shares the
  data root of the training set (validation, test, the kNN bank); datasets
  with another root (an OOD set, the CIFAR-100 half of CIFAR+N) keep it;
- a top-level ``data_preprocessor`` fills the keys that
  ``model.data_preprocessor`` does not set (mmengine would drop it whole).

A nested override that contradicts one of them is refused, naming both.
"""
import logging
import os.path as osp
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log

Path = Tuple[Any, ...]


class ConfigConflictError(ValueError):
    """Two settings of a config that the tools cannot both honour."""


def iter_dicts(node: Any) -> Iterator[dict]:
    """Every dict in a config tree (depth first, the root included).

    Args:
        node: A config, dict, list or tuple.

    Yields:
        dict: Each dict of the tree, e.g. every dataloader or dataset.
    """
    for _, child in iter_dict_paths(node):
        yield child


def iter_dict_paths(node: Any, path: Path = ()) -> Iterator[Tuple[Path,
                                                                 dict]]:
    """Every dict in a config tree with its path of keys and list indices.

    Args:
        node: A config, dict, list or tuple.
        path (tuple): The path of ``node``. Defaults to ``()``.

    Yields:
        tuple[tuple, dict]: ``(path, dict)``, depth first.
    """
    if isinstance(node, Config):
        node = node._cfg_dict
    if isinstance(node, dict):
        yield path, node
        children = node.items()
    elif isinstance(node, (list, tuple)):
        children = enumerate(node)
    else:
        return
    for key, child in children:
        yield from iter_dict_paths(child, path + (key, ))


def format_path(path: Path) -> str:
    """``('a', 0, 'b')`` -> ``'a.0.b'``, the ``--cfg-options`` spelling."""
    return '.'.join(str(key) for key in path)


def get_path(cfg: Config, path: Path) -> Any:
    """The value at ``path`` of ``cfg``; KeyError / IndexError if absent."""
    node = cfg._cfg_dict
    for key in path:
        node = node[key]
    return node


def _first_data_root(node: Any) -> Optional[Tuple[Path, str]]:
    for path, child in iter_dict_paths(node):
        if isinstance(child.get('data_root'), str):
            return path, child['data_root']
    return None


def training_data_root(cfg: Config) -> Optional[str]:
    """The data root of the training set (else of the test set).

    The first ``data_root`` inside ``train_dataloader.dataset`` (depth
    first, so the dataset wrapped by an ``OSRDataset``), else inside
    ``test_dataloader.dataset``.

    Args:
        cfg (Config): The config.

    Returns:
        str | None: The root, or None when no such dataset has one.
    """
    for loader in ('train_dataloader', 'test_dataloader'):
        dataset = (cfg.get(loader) or {}).get('dataset')
        found = _first_data_root(dataset)
        if found is not None:
            return found[1]
    return None


def _same_root(a: Any, b: Any) -> bool:
    """Equal paths, whatever the trailing slash (mmpretrain's bases write
    both ``data/cifar10`` and ``data/cifar10/``)."""
    return (isinstance(a, str) and isinstance(b, str)
            and osp.normpath(a) == osp.normpath(b))


def _tied_data_root_paths(cfg: Config, root: str) -> List[Path]:
    return [
        path for path, node in iter_dict_paths(cfg)
        if path and _same_root(node.get('data_root'), root)
    ]


def _apply_osr_split(cfg: Config, options: Dict[str, Any]) -> None:
    split = cfg.get('osr_split', None)
    if split is None:
        return
    for path, node in iter_dict_paths(cfg):
        if node.get('type') != 'OSRDataset':
            continue
        key = format_path(path + ('split', ))
        if key in options and options[key] != split:
            raise ConfigConflictError(
                f'{key}={options[key]!r} contradicts osr_split={split!r}: '
                'the tools copy the top-level osr_split into the split of '
                'every OSRDataset (training, validation, test, kNN bank). '
                f'Select the split once with --cfg-options '
                f'osr_split={options[key]!r}.')
        node['split'] = split


def _apply_data_root(cfg: Config, tied: List[Path],
                     root_before: Optional[str]) -> None:
    top = cfg.get('data_root', None)
    if top is not None and root_before is not None:
        for path in tied:
            node = get_path(cfg, path)
            if _same_root(node.get('data_root'), root_before):
                node['data_root'] = top
    values = {
        format_path(p + ('data_root', )): get_path(cfg, p).get('data_root')
        for p in tied
    }
    if len({osp.normpath(v) for v in values.values()}) > 1:
        listing = ', '.join(f'{k}={v!r}' for k, v in values.items())
        new = next(v for v in values.values()
                   if not _same_root(v, top or root_before))
        raise ConfigConflictError(
            'the datasets that share the data root of the training set '
            f'disagree: {listing}. Give the root once, for all of them, '
            f'with --cfg-options data_root={new!r} (or a top-level '
            '`data_root` in the config).')


def merge_data_preprocessor(cfg: Config) -> None:
    """Fill ``model.data_preprocessor`` from a top-level
    ``data_preprocessor``.

    mmengine's ``Runner`` uses the top-level ``data_preprocessor`` (where
    mmpretrain's dataset bases put ``mean``, ``std`` and ``to_rgb``) only
    when the model has none, so a model-level
    ``data_preprocessor=dict(type='OSRDataPreprocessor', num_classes=6)``
    would silently train on unnormalised pixels. The keys the model does
    not set are taken from the top level; a key set in both with different
    values keeps the model's, with a warning naming both.

    Args:
        cfg (Config): The config, updated in place.
    """
    top = cfg.get('data_preprocessor', None)
    model = cfg.get('model', None)
    if not top or not model or not model.get('data_preprocessor'):
        return
    inner = model['data_preprocessor']
    if not isinstance(inner, dict):
        return  # a built module: nothing to merge
    filled = sorted(k for k in top if k not in inner)
    overridden = sorted(k for k in top if k in inner and k != 'type'
                        and inner[k] != top[k])
    merged = ConfigDict(top)
    merged.update(inner)
    model['data_preprocessor'] = merged
    if filled:
        print_log(
            'model.data_preprocessor: took ' +
            ', '.join(f'{k}={top[k]!r}' for k in filled) +
            ' from the top-level data_preprocessor',
            logger='current')
    for key in overridden:
        print_log(
            f'model.data_preprocessor.{key}={inner[key]!r} overrides the '
            f'top-level data_preprocessor.{key}={top[key]!r}',
            logger='current',
            level=logging.WARNING)


def merge_options(cfg: Config,
                  options: Optional[Dict[str, Any]] = None) -> Config:
    """Merge ``--cfg-options`` and apply the rules of this module.

    Args:
        cfg (Config): The config as parsed from its file.
        options (dict, optional): ``--cfg-options`` (dotted keys).
            Defaults to None.

    Returns:
        Config: The same config, updated in place.

    Raises:
        ConfigConflictError: A nested ``split`` contradicting ``osr_split``,
            or datasets sharing the training data root left disagreeing.
    """
    options = dict(options or {})
    root_before = training_data_root(cfg)
    tied = ([] if root_before is None else _tied_data_root_paths(
        cfg, root_before))
    if options:
        cfg.merge_from_dict(options)
    _apply_osr_split(cfg, options)
    _apply_data_root(cfg, tied, root_before)
    merge_data_preprocessor(cfg)
    return cfg


def find_osr_datasets(node: Any) -> Sequence[dict]:
    """The ``OSRDataset`` configs inside a config node, depth first."""
    return [d for d in iter_dicts(node) if d.get('type') == 'OSRDataset']


def check_osr_evaluator(evaluator: Any, name: str) -> None:
    """Raise before any work unless an evaluator config has an OSRMetric.

    Args:
        evaluator: The evaluator config (a metric dict, a list of them, or
            an ``Evaluator`` dict with ``metrics``).
        name (str): Its config key, for the message.

    Raises:
        ValueError: Naming the key and the metric types found.
    """
    from mmpretrain.registry import METRICS

    from ..evaluation.metrics import OSRMetric

    types = [d['type'] for d in iter_dicts(evaluator) if 'type' in d]
    for metric_type in types:
        cls = metric_type if isinstance(metric_type, type) else \
            METRICS.get(metric_type)
        if isinstance(cls, type) and issubclass(cls, OSRMetric):
            return
    raise ValueError(
        f'{name} has no OSRMetric (found {types or "no metric"}); add '
        "dict(type='OSRMetric') to report open-set metrics")
