"""Where a result comes from: config, data, split, checkpoint, versions.

Training writes :func:`collect_provenance` of the training set into every
checkpoint (``meta['provenance']``, by ``ProvenanceHook``), testing writes
that of the test set into ``osr_metrics.json``, and the tools refuse a
checkpoint whose recorded protocol, split, classes or dataset differ from
the config they are given (:func:`check_provenance`).
"""
import hashlib
import importlib.metadata
import logging
import os.path as osp
import platform
from typing import Any, Dict, List, Optional, Sequence

from mmengine.config import Config
from mmengine.dist import get_world_size
from mmengine.logging import print_log

from ..version import __version__
from .config_rules import find_osr_datasets

#: The entries :func:`check_provenance` compares.
CHECKED_KEYS = ('dataset_type', 'protocol', 'split', 'known_classes',
                'unknown_classes')
_DISTRIBUTIONS = ('torch', 'torchvision', 'mmengine', 'mmpretrain', 'mmcv',
                  'mmcv-lite', 'faiss-cpu', 'faiss-gpu', 'numpy',
                  'scikit-learn', 'timm')


class ProvenanceMismatchError(ValueError):
    """A checkpoint was trained on other data than the config describes."""


def file_sha256(path: str, chunk_size: int = 1 << 20) -> str:
    """The SHA-256 hex digest of a file.

    Args:
        path (str): The file.
        chunk_size (int): Bytes read at a time. Defaults to 1 MiB.

    Returns:
        str: 64 hex digits.
    """
    digest = hashlib.sha256()
    with open(path, 'rb') as file:
        for chunk in iter(lambda: file.read(chunk_size), b''):
            digest.update(chunk)
    return digest.hexdigest()


def library_versions() -> Dict[str, str]:
    """Versions of Python, the plugin and the installed libraries.

    Returns:
        dict[str, str]: ``python``, ``gradmix_plugin`` and every installed
        distribution among torch, torchvision, mmengine, mmpretrain,
        mmcv / mmcv-lite, faiss-cpu / faiss-gpu, numpy, scikit-learn, timm.
    """
    versions = dict(
        python=platform.python_version(), gradmix_plugin=__version__)
    for dist in _DISTRIBUTIONS:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def dataset_provenance(cfg: Config, loader: str) -> Dict[str, Any]:
    """What the config says about the data of one dataloader.

    Args:
        cfg (Config): The (merged) config.
        loader (str): ``'train_dataloader'``, ``'val_dataloader'`` or
            ``'test_dataloader'``.

    Returns:
        dict: ``dataset_type`` and ``data_root`` of the wrapped dataset,
        and ``protocol``, ``split``, ``known_classes`` and
        ``unknown_classes`` of its ``OSRDataset`` (None where the config
        has no ``OSRDataset``; protocol lists resolved) and its
        ``max_per_class`` when set.
    """
    from ..datasets.osr_splits import get_osr_protocol, get_osr_split

    dataset = (cfg.get(loader) or {}).get('dataset') or {}
    osr = find_osr_datasets(dataset)
    record = dict(
        dataset_type=dataset.get('type'),
        data_root=dataset.get('data_root'),
        protocol=None,
        split=None,
        known_classes=None,
        unknown_classes=None)
    if not osr:
        return record
    osr = osr[0]
    inner = osr.get('dataset') or {}
    record.update(
        dataset_type=inner.get('type'), data_root=inner.get('data_root'))
    protocol = osr.get('protocol')
    known, unknown = osr.get('known_classes'), osr.get('unknown_classes')
    if protocol is not None:
        split = osr.get('split', 0)
        known, unknown = get_osr_split(protocol, split)
        if unknown is None:
            num = get_osr_protocol(protocol).num_known_dataset_classes
            unknown = [c for c in range(num) if c not in known]
        record.update(protocol=protocol, split=split)
    record['max_per_class'] = osr.get('max_per_class')
    record.update(
        known_classes=None if known is None else list(known),
        unknown_classes=None if unknown is None else list(unknown))
    return record


def collect_provenance(cfg: Config,
                       loader: str,
                       checkpoint: Optional[str] = None) -> Dict[str, Any]:
    """The provenance record of a run or a result.

    Args:
        cfg (Config): The (merged) config; ``cfg.filename`` names the file.
        loader (str): The dataloader the result is about (see
            :func:`dataset_provenance`).
        checkpoint (str, optional): The checkpoint evaluated; its path and
            SHA-256 are recorded. Defaults to None.

    Returns:
        dict: ``config``, ``work_dir``, the :func:`dataset_provenance`
        entries, ``checkpoint``, ``checkpoint_sha256``, ``seed``,
        ``world_size`` and ``versions``.
    """
    randomness = cfg.get('randomness') or {}
    record = dict(
        config=osp.abspath(cfg.filename) if cfg.filename else None,
        work_dir=cfg.get('work_dir'),
        **dataset_provenance(cfg, loader),
        checkpoint=None if checkpoint is None else osp.abspath(checkpoint),
        checkpoint_sha256=None
        if checkpoint is None else file_sha256(checkpoint),
        seed=randomness.get('seed'),
        world_size=get_world_size(),
        versions=library_versions())
    return record


def recorded_provenance(checkpoint: dict) -> Dict[str, Any]:
    """The data a checkpoint was trained on, as far as it records it.

    Args:
        checkpoint (dict): A loaded checkpoint.

    Returns:
        dict: ``meta['provenance']`` when the checkpoint has it (written by
        ``ProvenanceHook``), else what mmengine's ``meta['dataset_meta']``
        of an ``OSRDataset`` gives (protocol, split, class ids); empty when
        neither exists.
    """
    meta = checkpoint.get('meta') or {}
    if meta.get('provenance'):
        return dict(meta['provenance'])
    dataset_meta = meta.get('dataset_meta') or {}
    if 'known_class_ids' not in dataset_meta:
        return {}
    return dict(
        protocol=dataset_meta.get('protocol'),
        split=dataset_meta.get('split'),
        known_classes=list(dataset_meta['known_class_ids']),
        unknown_classes=list(dataset_meta.get('unknown_class_ids') or []))


def check_provenance(recorded: Dict[str, Any],
                     current: Dict[str, Any],
                     checkpoint: str,
                     allow_mismatch: bool = False) -> None:
    """Refuse a checkpoint trained on other data than the config's.

    Compares ``dataset_type``, ``protocol``, ``split``, ``known_classes``
    and ``unknown_classes`` where both sides record them.

    Args:
        recorded (dict): :func:`recorded_provenance` of the checkpoint.
        current (dict): :func:`dataset_provenance` of the config.
        checkpoint (str): The checkpoint path, for the message.
        allow_mismatch (bool): Warn instead of raising. Defaults to False.

    Raises:
        ProvenanceMismatchError: Naming every differing entry with both
            values.
    """
    differences = [
        f'{key}: {recorded[key]!r} in the checkpoint, {current[key]!r} in '
        'the config' for key in CHECKED_KEYS
        if recorded.get(key) is not None and current.get(key) is not None
        and _normalise(recorded[key]) != _normalise(current[key])
    ]
    if not recorded:
        print_log(
            f'{checkpoint} records no training data (no meta.provenance '
            'or OSRDataset dataset_meta): its protocol and split cannot be '
            'checked against the config',
            logger='current',
            level=logging.WARNING)
    if not differences:
        return
    message = (f'checkpoint {checkpoint} was trained on other data than the '
               'config describes: ' + '; '.join(differences))
    if allow_mismatch:
        print_log(
            message + ' (--allow-mismatch given: going on)',
            logger='current',
            level=logging.WARNING)
        return
    raise ProvenanceMismatchError(
        message + '. Select the matching split with --cfg-options '
        'osr_split=<k> (or the matching config), or pass --allow-mismatch '
        'if this is intended.')


def _normalise(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    return value


#: Keys a resumed run may change freely (where to write, how to launch).
_RESUME_FREE_KEYS = ('work_dir', 'load_from', 'resume', 'launcher',
                     'experiment_name', 'allow_mismatch', 'env_cfg',
                     'model_wrapper_cfg', 'filename')
_RESUME_FREE_LEAVES = ('pin_memory', 'persistent_workers')
#: Config subtrees whose values the resumed checkpoint's state replaces.
_CHECKPOINT_WINS = (('optim_wrapper.optimizer.', 'the optimizer state is '
                     'restored with its hyper-parameters'),
                    ('param_scheduler', 'the schedulers\' state is '
                     'restored'),
                    ('randomness.seed', 'the random states are restored'))


def _flatten(node: Any, prefix: str = '') -> Dict[str, Any]:
    if isinstance(node, dict):
        flat: Dict[str, Any] = {}
        for key, value in node.items():
            flat.update(_flatten(value, f'{prefix}{key}.'))
        return flat
    if isinstance(node, (list, tuple)) and any(
            isinstance(item, dict) for item in node):
        flat = {}
        for index, value in enumerate(node):
            flat.update(_flatten(value, f'{prefix}{index}.'))
        return flat
    return {prefix[:-1]: _normalise(node)}


def config_differences(saved: Dict[str, Any],
                       current: Dict[str, Any]) -> Dict[str, tuple]:
    """The settings a resumed run changes.

    Args:
        saved (dict): The config the checkpoint was trained with.
        current (dict): The config of the resumed run.

    Returns:
        dict: Dotted key -> ``(saved value, current value)`` (``'<unset>'``
        where one side lacks the key), without the keys a resumed run may
        change freely (work dir, launcher, ``load_from``, ``resume``,
        ``env_cfg``, ``pin_memory`` / ``persistent_workers``, ...).
    """
    flat_saved, flat_current = _flatten(saved), _flatten(current)
    differences = {}
    for key in sorted(set(flat_saved) | set(flat_current)):
        if key.split('.')[0] in _RESUME_FREE_KEYS or key.split(
                '.')[-1] in _RESUME_FREE_LEAVES:
            continue
        old = flat_saved.get(key, '<unset>')
        new = flat_current.get(key, '<unset>')
        if old != new:
            differences[key] = (old, new)
    return differences


def warn_resume_config_changes(checkpoint: dict, cfg: Config,
                               path: str) -> Dict[str, tuple]:
    """Warn when ``--resume`` continues with another config than the
    checkpoint was trained with, naming each differing key, both values
    and which one takes effect.

    mmengine restores the optimizer (with its learning rate, momentum,
    weight decay), the parameter schedulers and, with ``RNGStateHook``,
    the random states from the checkpoint: a changed value there does not
    take effect. Every other setting (e.g. ``train_cfg.max_epochs``, the
    data pipeline) is the current config's.

    Args:
        checkpoint (dict): The loaded checkpoint (``meta['cfg']`` is the
            text of the config it was trained with).
        cfg (Config): The resumed run's config.
        path (str): The checkpoint, for the message.

    Returns:
        dict: :func:`config_differences` (empty when the checkpoint has no
        readable config).
    """
    text = (checkpoint.get('meta') or {}).get('cfg')
    if not text:
        return {}
    try:
        saved = Config.fromstring(text, '.py').to_dict()
    except Exception as err:  # a config of another plugin version
        print_log(
            f'--resume: the config stored in {path} cannot be read ({err}); '
            'changes of the config since then are not checked',
            logger='current',
            level=logging.WARNING)
        return {}
    differences = config_differences(saved, cfg.to_dict())
    if not differences:
        return differences
    lines = []
    for key, (old, new) in differences.items():
        why = next((reason for prefix, reason in _CHECKPOINT_WINS
                    if key.startswith(prefix)), None)
        winner = (f"the checkpoint's value {old!r} wins ({why})"
                  if why else f'the config\'s value {new!r} wins')
        lines.append(f'{key}: {old!r} in the checkpoint, {new!r} now: '
                     f'{winner}')
    print_log(
        f'--resume: the config differs from the one {path} was trained '
        'with; ' + '; '.join(lines) + '. To train with new optimizer or '
        'scheduler values, start a new run with load_from=<checkpoint> '
        'instead of --resume.',
        logger='current',
        level=logging.WARNING)
    return differences


def recorded_class_names(checkpoint: dict) -> List[str]:
    """The class names (in label order) of the data a checkpoint was
    trained on: ``meta['provenance']['class_names']``, else mmengine's
    ``meta['dataset_meta']['classes']``; empty if neither is there."""
    meta = checkpoint.get('meta') or {}
    names = (meta.get('provenance') or {}).get('class_names') or (
        meta.get('dataset_meta') or {}).get('classes')
    return [str(name) for name in names or ()]


def check_class_names(expected: Sequence[str],
                      actual: Sequence[str],
                      expected_what: str,
                      actual_what: str,
                      allow_mismatch: bool = False) -> None:
    """Refuse data whose class names differ, label by label, from those a
    model was trained with.

    A class folder missing from a test set (or an extra one) shifts the
    label of every later class: the numbers of classes can still match and
    the metrics come out wrong without any error. Nothing is checked where
    one side has no names.

    Args:
        expected (Sequence[str]): Class names in label order, e.g. of the
            checkpoint's training set.
        actual (Sequence[str]): Those of the data to use with it.
        expected_what (str): What ``expected`` belongs to, for the message.
        actual_what (str): What ``actual`` belongs to.
        allow_mismatch (bool): Warn instead of raising. Defaults to False.

    Raises:
        ProvenanceMismatchError: Naming the first differing labels with
            both names.
    """
    expected = [str(name) for name in expected or ()]
    actual = [str(name) for name in actual or ()]
    if not expected or not actual or expected == actual:
        return
    differences = [
        f'label {label} is {old!r} in {expected_what} but {new!r} in '
        f'{actual_what}'
        for label, (old, new) in enumerate(zip(expected, actual))
        if old != new
    ]
    more = len(differences) - 3
    differences = differences[:3] + ([f'{more} more'] if more > 0 else [])
    if len(expected) != len(actual):
        differences.append(f'{len(expected)} classes in {expected_what}, '
                           f'{len(actual)} in {actual_what}')
    message = (f'the classes of {actual_what} differ by name from those of '
               f'{expected_what}: ' + '; '.join(differences))
    if allow_mismatch:
        print_log(
            message + ' (allow_mismatch: going on)',
            logger='current',
            level=logging.WARNING)
        return
    raise ProvenanceMismatchError(
        message + '. Labels would be compared shifted. Check the data '
        'folders (a missing or extra class folder shifts every later '
        'label) or the known classes; --allow-mismatch (allow_mismatch = '
        'True in the config) turns this into a warning.')
