"""Safe, checked checkpoint loading, and nothing changed at import."""
import pickle
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import (
    CheckpointLoader,
    _load_checkpoint,
    save_checkpoint,
)

from gradmix_plugin.utils import (
    DamagedCheckpointError,
    UnsafeCheckpointError,
    load_checkpoint_file,
    load_from_local_safely,
    safe_checkpoint_loading,
)


class WritesFile:
    """A pickled object that would create a file when unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, 'w'))


def _mmengine_checkpoint(path):
    hub = MessageHub.get_instance('test_checkpoint')
    hub.update_scalar('train/loss', 0.5)
    hub.update_info('eta', np.float64(3.0))
    checkpoint = dict(
        meta=dict(epoch=1, seed=np.int64(7), dataset_meta=dict(
            classes=('a', 'b'))),
        state_dict=dict(weight=torch.ones(2)),
        message_hub=hub.state_dict(),
        rng=dict(numpy=np.random.get_state()))
    save_checkpoint(checkpoint, str(path))
    return checkpoint


def test_mmengine_checkpoint_loads_with_weights_only(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    _mmengine_checkpoint(path)
    loaded = load_from_local_safely(str(path))
    assert loaded['meta']['seed'] == 7
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert buffer.mean() == pytest.approx(0.5)
    # mmengine's loading entry point goes through the safe loader inside
    # safe_checkpoint_loading (what the runner and the tools use).
    with safe_checkpoint_loading():
        loaded = _load_checkpoint(str(path), map_location='cpu')
    assert torch.equal(loaded['state_dict']['weight'], torch.ones(2))
    assert loaded['rng']['numpy'][0] == 'MT19937'


def test_malicious_checkpoint_refused_and_not_executed(tmp_path):
    victim = tmp_path / 'pwned.txt'
    path = tmp_path / 'evil.pth'
    torch.save(dict(state_dict={}, payload=WritesFile(str(victim))), path)
    with pytest.raises(UnsafeCheckpointError, match='builtins.open|io.open'):
        load_checkpoint_file(str(path))
    with pytest.raises(UnsafeCheckpointError, match='Nothing was executed'):
        load_from_local_safely(str(path))
    assert not victim.exists()


def test_getattr_is_limited_to_history_buffer(tmp_path):

    class GetattrEscape:

        def __reduce__(self):
            return (getattr, (HistoryBuffer, '__subclasses__'))

    path = tmp_path / 'getattr.pth'
    torch.save(dict(x=GetattrEscape()), path)
    with pytest.raises(pickle.UnpicklingError, match='__subclasses__'):
        load_from_local_safely(str(path))


def test_corrupted_and_missing_checkpoint(tmp_path):
    path = tmp_path / 'broken.pth'
    _mmengine_checkpoint(path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(RuntimeError, match='corrupted'):
        load_from_local_safely(str(path))
    with pytest.raises(FileNotFoundError, match='nothing.pth'):
        load_from_local_safely(str(tmp_path / 'nothing.pth'))


@pytest.mark.slow
def test_import_changes_nothing_process_wide():
    """Importing the plugin (what ``custom_imports`` does in a user's
    project) leaves mmengine's checkpoint loaders, torch's allow-list and
    the warning filters as they were."""
    # Libraries change them on their own first import (torch adds its
    # classes to the allow-list, scipy adds warning filters): import every
    # library module the plugin imports first, then the plugin.
    listing = subprocess.run(
        [sys.executable, '-c', 'import sys, gradmix_plugin; print(" ".join('
         'm for m in sys.modules if not m.startswith("gradmix_plugin")))'],
        capture_output=True, text=True, check=True)
    code = """
import importlib, sys, warnings
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except Exception:
        pass
import torch
from mmengine.runner.checkpoint import CheckpointLoader
before = (dict(CheckpointLoader._schemes),
          list(torch.serialization.get_safe_globals()),
          list(warnings.filters))
import gradmix_plugin
after = (dict(CheckpointLoader._schemes),
         list(torch.serialization.get_safe_globals()),
         list(warnings.filters))
for name, old, new in zip(('loaders', 'allow-list', 'filters'),
                          before, after):
    assert old == new, (name, [x for x in new if x not in old])
"""
    result = subprocess.run(
        [sys.executable, '-c', code, *listing.stdout.split()],
        capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_safe_loading_is_scoped(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    _mmengine_checkpoint(path)
    loaders = dict(CheckpointLoader._schemes)
    allowed = list(torch.serialization.get_safe_globals())
    torch.serialization.add_safe_globals([WritesFile])
    try:
        with safe_checkpoint_loading():
            assert CheckpointLoader._get_checkpoint_loader(str(path)) \
                is load_from_local_safely
            with safe_checkpoint_loading():  # nests
                load_checkpoint_file(str(path))
            assert CheckpointLoader._get_checkpoint_loader(str(path)) \
                is load_from_local_safely
        # The caller's own allow-list entry survives a load.
        assert WritesFile in torch.serialization.get_safe_globals()
    finally:
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(allowed)
    assert dict(CheckpointLoader._schemes) == loaders
    assert set(map(repr, torch.serialization.get_safe_globals())) \
        == set(map(repr, allowed))


def _zero_entry(path, entry_suffix):
    """Overwrite the stored data of one zip entry with zeros, in place (the
    archive's structure and checksums stay as written)."""
    with zipfile.ZipFile(path) as archive:
        info = next(i for i in archive.infolist()
                    if i.filename.endswith(entry_suffix))
    data = bytearray(path.read_bytes())
    offset = info.header_offset
    name_len, extra_len = struct.unpack('<HH', data[offset + 26:offset + 30])
    start = offset + 30 + name_len + extra_len
    data[start:start + info.file_size] = bytes(info.file_size)
    path.write_bytes(bytes(data))
    return info.filename


def test_checkpoint_damaged_on_disk_is_refused(tmp_path):
    path = tmp_path / 'epoch_1.pth'
    torch.save(dict(state_dict=dict(weight=torch.randn(100))), path)
    entry = _zero_entry(path, '/data/0')
    # torch itself loads the altered weights without complaint.
    assert torch.load(path, weights_only=True)['state_dict']['weight'].eq(
        0).all()
    with pytest.raises(DamagedCheckpointError,
                       match=f'is damaged: the data of its entry '
                       f"'{entry}' does not match the CRC-32"):
        load_from_local_safely(str(path))


def test_text_file_as_checkpoint(tmp_path):
    path = tmp_path / 'notes.pth'
    path.write_text('hello world\n' * 10)
    with pytest.raises(DamagedCheckpointError,
                       match='is corrupted or not a PyTorch checkpoint: it '
                       'is neither a zip archive'):
        load_from_local_safely(str(path))
