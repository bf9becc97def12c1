"""Safe loading of mmengine checkpoints with ``torch.load(weights_only=True)``.

Since torch 2.6, ``torch.load`` only unpickles allow-listed globals. An
mmengine checkpoint carries a few more (the message hub's ``HistoryBuffer``
and numpy arrays/scalars), so plain ``load_from``/``--resume`` break.
:func:`load_from_local_safely` allow-lists exactly those globals for the
duration of one load, keeps ``weights_only=True``, refuses any other
pickled object with an error naming it (nothing is executed while
refusing) and verifies the CRC-32 of every stored entry, so a file damaged
on disk is refused instead of loading altered weights.

Importing the plugin changes nothing process-wide: the runner, the tools
and the inferencer load checkpoints inside :func:`safe_checkpoint_loading`,
which routes mmengine's loader for local files through
:func:`load_from_local_safely` and restores mmengine's own on exit.
"""
import contextlib
import glob
import logging
import os
import os.path as osp
import pickle
import zipfile
from typing import Callable, Iterable, Iterator, List, Optional, Tuple

import numpy as np
import torch
from mmengine.logging import print_log
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a pickled object outside the allow-list."""


class DamagedCheckpointError(RuntimeError):
    """A checkpoint file is damaged, truncated or not a checkpoint."""


class NonFiniteCheckpointError(ValueError):
    """A checkpoint holds NaN or infinite weights (a diverged run)."""


def _history_buffer_getattr(obj: object, name: str) -> Callable:
    """Stand-in for ``builtins.getattr`` inside checkpoints.

    ``HistoryBuffer`` pickles its statistics methods as
    ``getattr(HistoryBuffer, 'mean')``; only those lookups are allowed.

    Args:
        obj (object): The object the pickle asks an attribute of.
        name (str): The attribute name.

    Returns:
        Callable: The statistics method.
    """
    allowed = {'min', 'max', 'mean', 'current'}
    allowed.update(HistoryBuffer._statistics_methods)  # registered ones
    if ((obj is HistoryBuffer or isinstance(obj, HistoryBuffer))
            and name in allowed):
        return getattr(obj, name)
    raise UnsafeCheckpointError(
        f'checkpoint asks for attribute {name!r} of {obj!r}; '
        'only HistoryBuffer statistics methods are allowed')


def _numpy_globals() -> List:
    multiarray = getattr(np, '_core', None) or np.core
    multiarray = multiarray.multiarray
    dtypes = (np.bool_, np.uint8, np.int8, np.int16, np.int32, np.int64,
              np.uint32, np.uint64, np.float16, np.float32, np.float64)
    return [
        np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar,
        *{type(np.dtype(t))
          for t in dtypes}
    ]


def safe_globals() -> List:
    """The globals allow-listed on top of torch's own.

    Returns:
        list: Objects (or ``(object, 'module.name')`` pairs) for
        :func:`torch.serialization.add_safe_globals`.
    """
    return [
        HistoryBuffer, (_history_buffer_getattr, 'builtins.getattr'),
        *_numpy_globals()
    ]


def register_safe_globals() -> None:
    """Allow-list the globals of mmengine checkpoints for the whole process
    (explicit opt-in; nothing calls it at import)."""
    torch.serialization.add_safe_globals(safe_globals())


@contextlib.contextmanager
def _allow_listed() -> Iterator[None]:
    """Add :func:`safe_globals` to torch's allow-list inside, and leave the
    allow-list exactly as it was on exit (also entries the caller had
    added before, which ``torch.serialization.safe_globals`` would
    remove)."""
    before = list(torch.serialization.get_safe_globals())
    torch.serialization.add_safe_globals(safe_globals())
    try:
        yield
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(before)


def _unsafe_globals(filename: str) -> Tuple[str, ...]:
    allowed = {
        f'{obj.__module__}.{obj.__qualname__}'
        for obj in safe_globals() if not isinstance(obj, tuple)
    } | {name for obj in safe_globals() if isinstance(obj, tuple)
         for name in obj[1:]}
    found = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
    return tuple(name for name in found if name not in allowed)


def verify_checkpoint_file(filename: str) -> None:
    """Refuse a file that is not an intact ``torch.save`` archive.

    ``torch.save`` writes a zip archive with a CRC-32 checksum of every
    entry (the pickled structure and each tensor's storage); ``torch.load``
    never checks them, so bytes changed on disk load as altered weights.
    Reading every entry once and comparing its checksum detects that.
    Files in torch's legacy (pre-1.6, plain pickle) format carry no
    checksum and pass.

    Args:
        filename (str): Path of the checkpoint file.

    Raises:
        DamagedCheckpointError: The file is neither a zip archive nor a
            pickle, is truncated, or an entry's data does not match its
            checksum (the entry is named).
    """
    with open(filename, 'rb') as file:
        head = file.read(4)
    if not zipfile.is_zipfile(filename):
        if head[:1] == b'\x80':  # a legacy pickle-format checkpoint
            return
        raise DamagedCheckpointError(
            f'checkpoint file {filename} is corrupted or not a PyTorch '
            'checkpoint: it is neither a zip archive (what torch.save '
            f'writes) nor a legacy pickle (it starts with {head!r}). Check '
            'the path: it should name a .pth file written by training.')
    try:
        with zipfile.ZipFile(filename) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        raise DamagedCheckpointError(
            f'checkpoint file {filename} is damaged (truncated or '
            f'overwritten: {err}). Use an intact checkpoint, e.g. an earlier '
            'epoch_*.pth of the same work dir.') from err
    if bad is not None:
        raise DamagedCheckpointError(
            f'checkpoint file {filename} is damaged: the data of its entry '
            f'{bad!r} does not match the CRC-32 checksum written with it '
            '(the file changed on disk after it was saved). Nothing was '
            'loaded; use an intact checkpoint, e.g. an earlier epoch_*.pth '
            'of the same work dir, or retrain.')


def load_from_local_safely(filename: str,
                           map_location: Optional[str] = None) -> dict:
    """Load a local checkpoint with ``weights_only=True``, after checking
    its entries' checksums (:func:`verify_checkpoint_file`).

    Args:
        filename (str): Path of the checkpoint file.
        map_location (str, optional): Same as :func:`torch.load`.

    Returns:
        dict: The loaded checkpoint.

    Raises:
        FileNotFoundError: The file does not exist.
        UnsafeCheckpointError: The file holds a pickled global outside the
            allow-list (named in the message); it is not executed.
        DamagedCheckpointError: The file is damaged or not a PyTorch
            checkpoint (a ``RuntimeError``).
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file not found: {filename}')
    verify_checkpoint_file(filename)
    try:
        with _allow_listed():
            return torch.load(
                filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if 'Weights only load failed' not in str(err):
            raise DamagedCheckpointError(
                f'checkpoint file {filename} is corrupted or not a PyTorch '
                f'checkpoint: {err}') from err
        try:
            names = _unsafe_globals(filename)
        except (RuntimeError, EOFError, ValueError, KeyError,
                pickle.UnpicklingError) as scan_err:
            # Not a torch.save file at all (e.g. a legacy-format or
            # garbage file whose first bytes happen to unpickle).
            raise DamagedCheckpointError(
                f'checkpoint file {filename} is corrupted or not a PyTorch '
                f'checkpoint: {scan_err}') from err
        what = (f'pickled global(s) {", ".join(names)} outside the '
                'allow-list of gradmix_plugin.utils.checkpoint'
                if names else f'a forbidden object ({err})')
        raise UnsafeCheckpointError(
            f'refusing to load checkpoint {filename}: it contains {what}. '
            'Nothing was executed. Only load checkpoints you trust; if the '
            'object is legitimate, allow it with '
            'torch.serialization.add_safe_globals.') from err
    except (RuntimeError, EOFError, ValueError, KeyError) as err:
        raise DamagedCheckpointError(
            f'checkpoint file {filename} is corrupted or not a PyTorch '
            f'checkpoint ({type(err).__name__}: {err})') from err


@contextlib.contextmanager
def safe_checkpoint_loading() -> Iterator[None]:
    """Load local checkpoints with :func:`load_from_local_safely` inside.

    mmengine's ``Runner.load_checkpoint`` / ``resume`` and
    ``CheckpointLoader.load_checkpoint`` go through
    :func:`load_from_local_safely` for local paths inside the block;
    mmengine's own loader for local files is restored on exit, so nothing
    outside the block (the rest of a user's process) changes. Blocks nest.

    Example:
        >>> with safe_checkpoint_loading():
        ...     runner.train()  # ``load_from`` / ``resume`` are safe
    """
    previous = CheckpointLoader._schemes.get('')
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local_safely, force=True)
    try:
        yield
    finally:
        # ``register_scheme`` re-sorts into a new dict: look it up again.
        if previous is None:
            CheckpointLoader._schemes.pop('', None)
        else:
            CheckpointLoader._schemes[''] = previous


def load_checkpoint_file(filename: str,
                         map_location: Optional[str] = 'cpu') -> dict:
    """Load a checkpoint (any scheme mmengine knows) inside
    :func:`safe_checkpoint_loading`.

    Args:
        filename (str): Path or URL of the checkpoint.
        map_location (str, optional): Defaults to ``'cpu'``.

    Returns:
        dict: The loaded checkpoint.
    """
    with safe_checkpoint_loading():
        return CheckpointLoader.load_checkpoint(filename, map_location)


def first_non_finite(
        named_tensors: Iterable[Tuple[str, torch.Tensor]]
) -> Optional[Tuple[str, str]]:
    """The first floating-point tensor with a NaN or infinite value.

    Args:
        named_tensors (Iterable[tuple[str, Tensor]]): Names and tensors,
            e.g. ``model.named_parameters()`` or a state dict's items.

    Returns:
        tuple[str, str] or None: The tensor's name and what is wrong
        (e.g. ``'nan in 3 of 64 values'``), or None if all are finite.
    """
    named = [(name, tensor) for name, tensor in named_tensors
             if torch.is_tensor(tensor) and tensor.is_floating_point()]
    if not named:
        return None
    flags = torch.stack(
        [torch.isfinite(tensor).all() for _, tensor in named])
    if bool(flags.all()):  # a single device synchronisation
        return None
    name, tensor = named[int((~flags).nonzero()[0])]
    tensor = tensor.detach()
    kinds = [kind for kind, count in (
        ('nan', int(torch.isnan(tensor).sum())),
        ('inf', int(torch.isinf(tensor).sum()))) if count]
    bad = int((~torch.isfinite(tensor)).sum())
    return name, f'{"/".join(kinds)} in {bad} of {tensor.numel()} values'


def check_checkpoint_fits(model: torch.nn.Module,
                          filename: str,
                          checkpoint: Optional[dict] = None) -> None:
    """Raise unless a checkpoint has exactly the parameters and buffers of
    ``model``, with the same shapes.

    mmengine's ``load_from`` only warns about mismatches (and only on rank
    0), then runs with the model's random initial values where the
    checkpoint did not fit, e.g. a classifier head trained with another
    number of classes. Testing such a model silently reports meaningless
    metrics, so ``tools/test.py`` checks first, on every rank.

    Args:
        model (nn.Module): The unwrapped model.
        filename (str): The checkpoint (loaded with the registered safe
            loader unless ``checkpoint`` is given).
        checkpoint (dict, optional): The loaded checkpoint. Defaults to
            None.

    Raises:
        ValueError: Naming the mismatched entries with both shapes, and the
            entries missing from / unexpected in the checkpoint (the first
            five of each kind, and how many more).
        NonFiniteCheckpointError: A weight or buffer holds NaN or inf
            (a ``ValueError``; the first such tensor is named).
    """
    if checkpoint is None:
        checkpoint = load_checkpoint_file(filename)
    state_dict = checkpoint.get('state_dict', checkpoint)
    state_dict = {
        key[len('module.'):] if key.startswith('module.') else key: value
        for key, value in state_dict.items()
    }
    expected = model.state_dict()
    shapes = [
        f'{key} has shape {tuple(state_dict[key].shape)} in the checkpoint '
        f'but {tuple(value.shape)} in the model'
        for key, value in expected.items()
        if key in state_dict and state_dict[key].shape != value.shape
    ]
    problems = shapes[:5]
    if len(shapes) > 5:
        problems.append(f'{len(shapes) - 5} more shape mismatches')
    missing = [
        key for key in expected
        if key not in state_dict and not key.endswith('num_batches_tracked')
    ]
    unexpected = [key for key in state_dict if key not in expected]
    for what, keys in (('missing in the checkpoint', missing),
                       ('not in the model', unexpected)):
        if keys:
            more = f' and {len(keys) - 5} more' if len(keys) > 5 else ''
            problems.append(f'{what}: {", ".join(keys[:5])}{more}')
    if problems:
        raise ValueError(
            f'checkpoint {filename} does not fit the model '
            f'{type(model).__name__}: ' + '; '.join(problems) +
            '. Was it trained with another config (e.g. another number of '
            'classes / OSR split)?')
    found = first_non_finite(state_dict.items())
    if found is not None:
        raise NonFiniteCheckpointError(
            f'checkpoint {filename} has non-finite weights: {found[0]} has '
            f'{found[1]}. It comes from a diverged training run; its '
            'metrics would be meaningless. Use a checkpoint from before the '
            'divergence, or retrain with a lower learning rate.')


def register_checkpoint_loader() -> None:
    """Make mmengine load local checkpoints with
    :func:`load_from_local_safely` for the rest of the process.

    An explicit, process-wide opt-in for a user's own scripts; the plugin
    itself never calls it (it uses :func:`safe_checkpoint_loading`).
    """
    register_safe_globals()
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local_safely, force=True)


def replace_file_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader (or a process killed at
    any moment) sees either the old or the new content, never a mix.

    Args:
        path (str): The file.
        text (str): Its new content.
    """
    tmp = f'{path}.tmp-{os.getpid()}'
    with open(tmp, 'w') as file:
        file.write(text)
        file.flush()
        os.fsync(file.fileno())
    os.replace(tmp, path)


def _damage(filename: str) -> Optional[str]:
    """Why ``filename`` is not an intact checkpoint, or None if it is."""
    try:
        verify_checkpoint_file(filename)
    except (DamagedCheckpointError, OSError) as err:
        return str(err)
    return None


def find_resumable_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint ``--resume`` continues from in ``work_dir``.

    The one ``last_checkpoint`` names, if it is intact; otherwise (a run
    killed while saving by an older version, a file deleted or damaged on
    disk) the newest intact ``*.pth`` of the work dir, with a warning
    naming both.

    Args:
        work_dir (str): The work dir.

    Returns:
        str or None: The checkpoint, or None if the work dir has neither
        ``last_checkpoint`` nor a ``*.pth`` file.

    Raises:
        DamagedCheckpointError: ``last_checkpoint`` names a missing or
            damaged file and no intact checkpoint is left.
    """
    named = None
    save_file = osp.join(work_dir, 'last_checkpoint')
    if osp.isfile(save_file):
        with open(save_file) as file:
            named = file.read().strip() or None
    damage = None if named is None else _damage(named)
    if named is not None and damage is None:
        return named
    candidates = sorted(
        (path for path in glob.glob(osp.join(work_dir, '*.pth'))
         if osp.isfile(path) and path != named),
        key=osp.getmtime,
        reverse=True)
    found = next((path for path in candidates if _damage(path) is None),
                 None)
    if named is None and found is None:
        return None
    if named is None:
        problem = f'{work_dir} has no last_checkpoint file'
    elif osp.exists(named):
        problem = f'last_checkpoint names a damaged file ({damage})'
    else:
        problem = f'last_checkpoint names {named}, which does not exist'
    if found is None:
        raise DamagedCheckpointError(
            f'--resume: {problem}, and {work_dir} holds no other intact '
            'checkpoint. Pass an intact checkpoint with --resume PATH, or '
            'remove last_checkpoint to train from scratch.')
    print_log(
        f'--resume: {problem}; resuming from {found}, the newest intact '
        'checkpoint there',
        logger='current',
        level=logging.WARNING)
    return found


def use_atomic_checkpoint_hook(cfg: dict) -> None:
    """Save with ``AtomicCheckpointHook`` where the config names mmengine's
    ``CheckpointHook`` (same arguments), so that a kill while saving never
    loses the last checkpoint.

    Args:
        cfg (dict): The config, updated in place.
    """
    hook = (cfg.get('default_hooks', None) or {}).get('checkpoint')
    if hook is not None and hook.get('type') in ('CheckpointHook',
                                                 'mmengine.CheckpointHook'):
        hook['type'] = 'AtomicCheckpointHook'
