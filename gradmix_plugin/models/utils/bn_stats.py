"""Control of the BatchNorm running statistics over a training step."""
from contextlib import contextmanager
from typing import Iterator, List

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def _tracking_batchnorms(model: nn.Module) -> List[_BatchNorm]:
    """The BatchNorm layers of ``model`` that keep running statistics."""
    return [
        module for module in model.modules()
        if isinstance(module, _BatchNorm) and module.track_running_stats
    ]


@contextmanager
def repeat_running_stats_update(model: nn.Module) -> Iterator[None]:
    """Update the running statistics of every BatchNorm twice per call.

    While the context is open, each call of a BatchNorm layer of ``model``
    in training mode with ``track_running_stats`` runs the layer's own
    ``forward`` once more on the same input, without gradient, right after
    the call (a forward hook; the extra output is dropped). The running
    mean, the running (unbiased) variance and ``num_batches_tracked`` thus
    move exactly as if the same batch had been forwarded twice in a row, by
    the layer's own kernel and update rule: ``momentum`` or the cumulative
    average of ``momentum=None``, and for ``SyncBatchNorm`` in a
    distributed run the statistics gathered from all ranks (one more
    collective per layer, as a second forward would have). Layers in eval
    mode or without running statistics are left alone, and so are layers
    that are no ``_BatchNorm`` (mmcv's ``MMSyncBN``). Each layer's
    buffers only depend on its own calls, so the replay right after the
    call gives the buffers of two complete forwards.

    Args:
        model (nn.Module): The model whose BatchNorm layers are hooked.
    """

    def replay(module: _BatchNorm, args: tuple, output: torch.Tensor):
        if module.training:
            with torch.no_grad():
                module.forward(*args)

    handles = [
        module.register_forward_hook(replay)
        for module in _tracking_batchnorms(model)
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@contextmanager
def frozen_running_stats(model: nn.Module) -> Iterator[None]:
    """Keep the BatchNorm running statistics of forwards run inside.

    The running mean, variance and ``num_batches_tracked`` of every
    BatchNorm layer of ``model`` are replaced by copies on entry, which
    forwards inside the context (a recomputation) update, and the original
    tensors are put back on exit (also on error), unmodified. The originals
    are never written to, so graphs that saved them stay valid for
    backward, and so do graphs built inside (they saved the copies).
    Training-mode outputs do not depend on these buffers.

    Args:
        model (nn.Module): The model whose BatchNorm buffers are kept.
    """
    names = ('running_mean', 'running_var', 'num_batches_tracked')
    saved = [(module, name, getattr(module, name))
             for module in _tracking_batchnorms(model) for name in names
             if getattr(module, name) is not None]
    for module, name, buffer in saved:
        setattr(module, name, buffer.clone())
    try:
        yield
    finally:
        for module, name, buffer in saved:
            setattr(module, name, buffer)
