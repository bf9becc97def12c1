"""Data-loader worker seeds that ``--resume`` reproduces."""
import os
import random

import numpy as np
import torch
from mmengine.registry import FUNCTIONS


@FUNCTIONS.register_module()
def resumable_worker_init_fn(worker_id: int) -> None:
    """Seed a data-loader worker from torch's per-iterator seed and the
    rank.

    mmengine's default ``worker_init_fn`` seeds every worker with
    ``seed + worker_id + num_workers * rank``: the same seeds at every
    epoch, so non-persistent workers repeat their random streams each
    epoch, and persistent workers carry states that no checkpoint holds
    (a resumed run restarts them). Instead, this keeps the seed that torch
    gives the workers of each new iterator (``base_seed + worker_id``,
    ``base_seed`` drawn from the main process's global torch generator,
    which :class:`~gradmix_plugin.engine.hooks.RNGStateHook` checkpoints)
    and mixes in the rank (``RANK``, set by ``torchrun``), so that ranks
    draw differently. With non-persistent workers every epoch then gets
    fresh streams that a resumed run draws again.

    Args:
        worker_id (int): The worker index (its seed already includes it).
    """
    rank = int(os.environ.get('RANK', 0))
    low, high = np.random.SeedSequence([torch.initial_seed(),
                                        rank]).generate_state(2)
    seed = int(low) | (int(high) << 31)
    random.seed(seed)
    np.random.seed(int(low))
    torch.manual_seed(seed)
