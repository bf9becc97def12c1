"""Safe loading of mmengine checkpoints with ``torch.load(weights_only=True)``.

Since torch 2.6, ``torch.load`` only unpickles allow-listed globals. An
mmengine checkpoint carries a few more (the message hub's ``HistoryBuffer``
and numpy arrays/scalars), so plain ``load_from``/``--resume`` break. This
module allow-lists exactly those globals and registers a checkpoint loader
for local files that keeps ``weights_only=True`` and refuses any other
pickled object with an error naming it. Nothing is executed while refusing.
"""
import os.path as osp
import pickle
from typing import Callable, List, Optional, Tuple

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader


class UnsafeCheckpointError(pickle.UnpicklingError):
    """A checkpoint holds a pickled object outside the allow-list."""


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
    """Allow-list the globals of mmengine checkpoints (idempotent)."""
    torch.serialization.add_safe_globals(safe_globals())


def _unsafe_globals(filename: str) -> Tuple[str, ...]:
    allowed = {
        f'{obj.__module__}.{obj.__qualname__}'
        for obj in safe_globals() if not isinstance(obj, tuple)
    } | {name for obj in safe_globals() if isinstance(obj, tuple)
         for name in obj[1:]}
    found = torch.serialization.get_unsafe_globals_in_checkpoint(filename)
    return tuple(name for name in found if name not in allowed)


def load_from_local_safely(filename: str,
                           map_location: Optional[str] = None) -> dict:
    """Load a local checkpoint with ``weights_only=True``.

    Args:
        filename (str): Path of the checkpoint file.
        map_location (str, optional): Same as :func:`torch.load`.

    Returns:
        dict: The loaded checkpoint.

    Raises:
        FileNotFoundError: The file does not exist.
        UnsafeCheckpointError: The file holds a pickled global outside the
            allow-list (named in the message); it is not executed.
        RuntimeError: The file is not a readable PyTorch checkpoint.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'checkpoint file not found: {filename}')
    try:
        return torch.load(
            filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if 'Weights only load failed' not in str(err):
            raise RuntimeError(
                f'checkpoint file {filename} is corrupted or not a PyTorch '
                f'checkpoint: {err}') from err
        try:
            names = _unsafe_globals(filename)
        except (RuntimeError, EOFError, ValueError,
                pickle.UnpicklingError) as scan_err:
            # Not a torch.save file at all (e.g. a legacy-format or
            # garbage file whose first bytes happen to unpickle).
            raise RuntimeError(
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
    except (RuntimeError, EOFError, ValueError) as err:
        raise RuntimeError(
            f'checkpoint file {filename} is corrupted or not a PyTorch '
            f'checkpoint ({type(err).__name__}: {err})') from err


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
    """
    if checkpoint is None:
        checkpoint = CheckpointLoader.load_checkpoint(filename, 'cpu')
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


def register_checkpoint_loader() -> None:
    """Make mmengine load local checkpoints with
    :func:`load_from_local_safely` (``load_from``, ``--resume``, tests)."""
    register_safe_globals()
    CheckpointLoader.register_scheme(
        prefixes='', loader=load_from_local_safely, force=True)
