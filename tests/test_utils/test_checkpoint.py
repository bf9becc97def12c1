import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer, MessageHub
from mmengine.runner.checkpoint import _load_checkpoint, save_checkpoint

import gradmix_plugin  # noqa: F401  (registers the safe loader)
from gradmix_plugin.utils import UnsafeCheckpointError, load_from_local_safely


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
    # torch.load's own default path (weights_only=True) must accept it.
    loaded = torch.load(path, weights_only=True)
    assert loaded['meta']['seed'] == 7
    buffer = loaded['message_hub']['log_scalars']['train/loss']
    assert buffer.mean() == pytest.approx(0.5)
    # and mmengine's loading entry point goes through the safe loader.
    loaded = _load_checkpoint(str(path), map_location='cpu')
    assert torch.equal(loaded['state_dict']['weight'], torch.ones(2))
    assert loaded['rng']['numpy'][0] == 'MT19937'


def test_malicious_checkpoint_refused_and_not_executed(tmp_path):
    victim = tmp_path / 'pwned.txt'
    path = tmp_path / 'evil.pth'
    torch.save(dict(state_dict={}, payload=WritesFile(str(victim))), path)
    with pytest.raises(UnsafeCheckpointError, match='builtins.open|io.open'):
        _load_checkpoint(str(path), map_location='cpu')
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
