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
import ast
import difflib
import logging
import os.path as osp
import warnings
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
    """Merge ``--cfg-options``, then apply :func:`apply_config_rules` (the
    rules ``OSRRunner`` applies), for tools that build no runner.

    Args:
        cfg (Config): The config as parsed from its file.
        options (dict, optional): ``--cfg-options`` (dotted keys).
            Defaults to None.

    Returns:
        Config: The same config, updated in place.

    Raises:
        ConfigVariableError: A top-level key that would be ignored.
        ConfigConflictError: A nested ``split`` or ``data_root``
            contradicting the top-level one.
    """
    if options:
        cfg.merge_from_dict(dict(options))
    return apply_config_rules(cfg)


def find_osr_datasets(node: Any) -> Sequence[dict]:
    """The ``OSRDataset`` configs inside a config node, depth first."""
    return [d for d in iter_dicts(node) if d.get('type') == 'OSRDataset']


def check_osr_evaluator(evaluator: Any, name: str) -> None:
    """Raise before any work unless an evaluator config has an OSRMetric.

    A metric counts when its registered class is ``OSRMetric`` or derives
    from it (looked up by name in mmpretrain's ``METRICS``, so that this
    module imports nothing of ``gradmix_plugin.evaluation``).

    Args:
        evaluator: The evaluator config (a metric dict, a list of them, or
            an ``Evaluator`` dict with ``metrics``).
        name (str): Its config key, for the message.

    Raises:
        ValueError: Naming the key and the metric types found.
    """
    from mmpretrain.registry import METRICS

    types = [d['type'] for d in iter_dicts(evaluator) if 'type' in d]
    for metric_type in types:
        cls = metric_type if isinstance(metric_type, type) else \
            METRICS.get(metric_type)
        if isinstance(cls, type) and any(
                base.__name__ == 'OSRMetric' for base in cls.__mro__):
            return
    raise ValueError(
        f'{name} has no OSRMetric (found {types or "no metric"}); add '
        "dict(type='OSRMetric') to report open-set metrics")


class ConfigVariableError(ValueError):
    """A top-level config key that would be silently ignored."""


#: Top-level keys something reads at run time: mmengine's ``Runner`` and
#: its tools, mmpretrain's tools, the plugin (``osr_split`` and
#: ``data_root`` by the rules of this module, ``allow_mismatch`` by
#: ``OSRRunner``). Any other top-level key is a variable that was
#: substituted when its file was read. Extend with :func:`add_read_keys`.
READ_KEYS = {
    'activation_checkpointing', 'allow_mismatch', 'auto_scale_lr',
    'cfg', 'compile', 'custom_hooks', 'custom_imports', 'data_preprocessor',
    'data_root', 'default_hooks', 'default_scope', 'efficient_conv_bn_eval',
    'env_cfg', 'experiment_name', 'find_unused_parameters', 'launcher',
    'load_from', 'log_level', 'log_processor', 'model', 'model_wrapper_cfg',
    'optim_wrapper', 'osr_split', 'param_scheduler', 'randomness',
    'resource_limit', 'resume', 'runner_type', 'strategy', 'sync_bn',
    'test_cfg', 'test_dataloader', 'test_evaluator', 'train_cfg',
    'train_dataloader', 'tta_model', 'tta_pipeline', 'val_cfg',
    'val_dataloader', 'val_evaluator', 'visualizer', 'work_dir'
}
#: Top-level keys whose new value the rules copy to every place it was
#: substituted (so a change takes effect instead of being refused).
PROPAGATED_KEYS = ('osr_split', 'data_root')
#: At most this many substitution sites are named in a message.
_MAX_SITES = 6


def add_read_keys(*names: str) -> None:
    """Declare top-level config keys that a component reads at run time.

    :func:`check_config_variables` refuses a changed top-level key that
    nothing reads; a hook or runner that reads ``cfg.<name>`` itself
    declares it here (at import time, next to its registration).

    Args:
        *names (str): The top-level keys.
    """
    READ_KEYS.update(names)


def _iter_values(node: Any, path: Path = ()) -> Iterator[Tuple[Path, Any]]:
    """Every value below a config node with its path (not the root)."""
    if isinstance(node, Config):
        node = node._cfg_dict
    if isinstance(node, dict):
        items = node.items()
    elif isinstance(node, (list, tuple)):
        items = enumerate(node)
    else:
        return
    for key, child in items:
        yield path + (key, ), child
        yield from _iter_values(child, path + (key, ))


def _plain(value: Any) -> Any:
    """A config value without the ``_scope_`` keys that mmengine adds to
    the dicts of a ``pkg::`` base read from another package's config."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items() if k != '_scope_'}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def _same(a: Any, b: Any) -> bool:
    """Equal and of the same type (``True`` is no ``1`` here)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return _plain(a) == _plain(b)
    return type(a) is type(b) and _plain(a) == _plain(b)


def _telling(value: Any) -> bool:
    """Whether a value is distinctive enough to find where it was
    substituted (not a bool, None, an empty string or container)."""
    if value is None or isinstance(value, bool):
        return False
    if isinstance(value, (str, dict, list, tuple)):
        return len(value) > 0
    return True


def _names_in(node: ast.AST) -> set:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _users_of(key: str, files: Sequence[str]) -> set:
    """The top-level names whose definition in one of ``files`` uses the
    variable ``key``, directly or through other such names (a function,
    another variable)."""
    statements = []
    for filename in files:
        try:
            with open(filename, encoding='utf-8') as file:
                statements += ast.parse(file.read()).body
        except (OSError, SyntaxError):
            continue
    definitions = []
    for node in statements:
        if isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) \
                else [node.target]
            names = set().union(*(_names_in(t) for t in targets))
            definitions.append((names, _names_in(node.value)
                                if node.value is not None else set()))
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            definitions.append(({node.name}, _names_in(node)))
    users = {key}
    grown = True
    while grown:
        grown = False
        for names, used in definitions:
            if used & users and not names <= users:
                users |= names
                grown = True
    return users - {key}


def config_files(filename: str) -> List[str]:
    """A config file and all its ``_base_`` files, recursively."""
    files, todo = [], [filename]
    while todo:
        current = todo.pop()
        if current in files or not osp.isfile(current):
            continue
        files.append(current)
        todo += base_config_files(current)
    return files


def _substitution_sites(reference: Config, key: str,
                        files: Sequence[str]) -> List[Path]:
    """The nested places of ``reference`` that hold the value of its
    top-level ``key`` under a top-level key whose definition uses it."""
    value = reference.get(key)
    if not _telling(value):
        return []
    users = _users_of(key, files)
    sites = [
        path for path, child in _iter_values(reference)
        if path[0] in users and _same(child, value)
    ]
    # The keys named like the variable first (train_cfg.max_epochs).
    return sorted(sites, key=lambda path: path[-1] != key)


def _still_holds(cfg: Config, path: Path, value: Any) -> bool:
    try:
        return _same(get_path(cfg, path), value)
    except (KeyError, IndexError, TypeError):
        return False


def read_config_file(filename: str) -> Config:
    """A config file as mmengine parses it, without importing its
    ``custom_imports`` (the values substituted when it is read).

    Args:
        filename (str): Path of the config file.

    Returns:
        Config: The parsed config.
    """
    with warnings.catch_warnings():
        # mmengine imports pkg_resources for every ``pkg::`` base, which
        # older setuptools deprecate with a warning each time.
        warnings.filterwarnings(
            'ignore', 'pkg_resources is deprecated', UserWarning)
        return Config.fromfile(
            filename, import_custom_modules=False, format_python_code=False)


def base_config_files(filename: str) -> List[str]:
    """The paths of the direct ``_base_`` files of a config file
    (``pkg::`` bases resolved to the installed package's file)."""
    try:
        bases = Config._get_base_files(filename)
    except Exception:  # not parsable here: mmengine reports it itself
        return []
    with warnings.catch_warnings():  # as in read_config_file
        warnings.filterwarnings(
            'ignore', 'pkg_resources is deprecated', UserWarning)
        return [Config._get_cfg_path(base, filename)[0] for base in bases]


def _format_sites(sites: Sequence[Path]) -> str:
    names = [format_path(path) for path in sites[:_MAX_SITES]]
    if len(sites) > _MAX_SITES:
        names.append(f'... ({len(sites) - _MAX_SITES} more)')
    return ', '.join(names)


def _ignored_variable_message(key: str, new: Any, old: Any, where: str,
                              sites: Sequence[Path]) -> str:
    example = ' '.join(
        f'{format_path(path)}={new!r}' for path in sites[:2])
    return (
        f'{key}={new!r} would be ignored: {key} is a variable of {where}, '
        'substituted when the file was read, so its old value '
        f'{old!r} stays in {_format_sites(sites)}. Set those keys instead '
        f'(e.g. --cfg-options {example}); only '
        f'{" and ".join(PROPAGATED_KEYS)} are copied to every place that '
        'used them.')


def _unread_key_message(key: str, value: Any, known: Sequence[str],
                        where: str) -> str:
    match = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    hint = (f'Did you mean {match[0]}? (--cfg-options {match[0]}={value!r})'
            if match else 'Set the nested key it is meant for instead.')
    return (f'{key}={value!r} would be ignored: no top-level key {key} in '
            f'{where}, and neither mmengine nor the plugin reads it. {hint}')


def check_config_variables(cfg: Config) -> None:
    """Refuse a top-level key whose value would be silently ignored.

    mmengine substitutes a variable (``max_epochs = 10``) into the nested
    keys that use it (``train_cfg.max_epochs``, ...) when the file is read;
    changing the top-level key afterwards (``--cfg-options max_epochs=2``,
    or a child config) reaches none of them. Compared with the config file
    as read (``cfg.filename``) and with each of its direct bases, a
    top-level key is refused when:

    - it is new and nothing reads it (``READ_KEYS``): the message names the
      closest known key, e.g. ``osr_spilt`` -> ``osr_split``;
    - it changed and none of the nested places that held its old value
      changed with it: the message names those places.

    ``osr_split`` and ``data_root`` are not refused: the rules of this
    module copy them (:func:`apply_config_rules`). A config without a
    file (built in Python) is not checked.

    Args:
        cfg (Config): The merged config (options and tool settings
            applied).

    Raises:
        ConfigVariableError: Naming the key, its value and what to set.
    """
    filename = cfg.filename
    if not filename or not osp.isfile(filename):
        return
    files = config_files(filename)
    references = [(filename, read_config_file(filename))]
    for base in base_config_files(filename):
        if osp.isfile(base):
            references.append((base, read_config_file(base)))
    file_keys = set(references[0][1].keys())
    for key in cfg.keys():
        if key in READ_KEYS:
            continue
        if key not in file_keys:
            raise ConfigVariableError(
                _unread_key_message(key, cfg[key],
                                    file_keys | READ_KEYS, filename))
        for where, reference in references:
            if key not in reference or _same(cfg[key], reference[key]):
                continue
            old = reference[key]
            sites = _substitution_sites(reference, key, files)
            if sites and all(_still_holds(cfg, p, old) for p in sites):
                raise ConfigVariableError(
                    _ignored_variable_message(key, cfg[key], old, where,
                                              sites))
            if not sites and where == filename:
                raise ConfigVariableError(
                    f'{key}={cfg[key]!r} would be ignored: {key} is a '
                    f'variable of {where} that no other key of the config '
                    'holds, and neither mmengine nor the plugin reads it. '
                    'Set the nested key it is meant for instead.')


def _changed_paths(reference: Config, cfg: Config) -> Dict[str, Any]:
    """``{dotted path: value}`` of the leaves of ``cfg`` that differ from
    ``reference`` (what ``--cfg-options`` and the tools changed)."""
    changed = {}
    for path, value in _iter_values(cfg):
        if isinstance(value, (dict, list, tuple)):
            continue
        try:
            before = get_path(reference, path)
        except (KeyError, IndexError, TypeError):
            changed[format_path(path)] = value
            continue
        if not _same(before, value):
            changed[format_path(path)] = value
    return changed


def _refuse_unused(cfg: Config, reference: Config, key: str, used: bool,
                   why: str) -> None:
    """Refuse a changed propagated key that no dataset would read."""
    if used or key not in cfg or reference is cfg:
        return
    if key in reference and _same(cfg[key], reference[key]):
        return
    raise ConfigVariableError(
        f'{key}={cfg[key]!r} would be ignored: {why}. Remove the option, '
        'or set the nested key of the dataset that is meant.')


def apply_config_rules(cfg: Config) -> Config:
    """Apply the rules of this module to a merged config.

    Works on the config as mmengine's and mmpretrain's tools hand it to a
    runner, with ``--cfg-options`` already merged: what changed is found by
    comparing with the file as read (``cfg.filename``). Then
    :func:`check_config_variables` refuses ignored top-level keys,
    ``osr_split`` reaches every ``OSRDataset``, a changed ``data_root``
    every dataset that shared the training data root in the file, and the
    top-level ``data_preprocessor`` fills the model's. Applying it twice
    changes nothing more.

    Args:
        cfg (Config): The merged config, updated in place.

    Returns:
        Config: The same config.

    Raises:
        ConfigVariableError: A top-level key that would be ignored.
        ConfigConflictError: A nested ``split`` or ``data_root``
            contradicting the top-level one.
    """
    check_config_variables(cfg)
    filename = cfg.filename
    reference = (read_config_file(filename)
                 if filename and osp.isfile(filename) else cfg)
    root_before = training_data_root(reference)
    tied = []
    if root_before is not None:
        for path in _tied_data_root_paths(reference, root_before):
            try:
                node = get_path(cfg, path)
            except (KeyError, IndexError, TypeError):
                continue  # replaced since the file was read
            if isinstance(node, dict) and isinstance(
                    node.get('data_root'), str):
                tied.append(path)
    options = {} if reference is cfg else _changed_paths(reference, cfg)
    _refuse_unused(cfg, reference, 'data_root', bool(tied),
                   'no dataset of the config shares the data root of the '
                   'training set (it reads its data from elsewhere)')
    _refuse_unused(cfg, reference, 'osr_split',
                   bool(find_osr_datasets(cfg)),
                   'the config has no OSRDataset')
    _apply_osr_split(cfg, options)
    _apply_data_root(cfg, tied, root_before)
    merge_data_preprocessor(cfg)
    return cfg
