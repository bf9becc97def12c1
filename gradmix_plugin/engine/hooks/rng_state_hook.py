"""Saves and restores the global random states with every checkpoint."""
import random
from typing import Optional

import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class RNGStateHook(Hook):
    """Make ``--resume`` exact by checkpointing the global random states.

    mmengine restores weights, optimizer, schedulers and the sampler's epoch
    on resume, but not the global random generators that data augmentation
    (numpy, ``random``) and GradMix (torch: box sizes, noise, partners)
    draw from. This hook stores the Python, numpy, torch CPU and CUDA states
    under ``checkpoint['rng_state']`` and restores them on resume, so a run
    resumed after epoch ``k`` draws exactly what the uninterrupted run drew.

    With ``num_workers > 0`` the pipeline runs in worker processes that
    mmengine seeds from the config's seed at every epoch; their draws are
    reproduced as long as workers are not persistent.

    Args:
        strict (bool): Raise if a resumed checkpoint has no random state
            (instead of warning). Defaults to False.
    """

    priority = 'VERY_LOW'

    def __init__(self, strict: bool = False) -> None:
        self.strict = strict

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store the random states in the checkpoint."""
        state = dict(
            python=random.getstate(),
            numpy=np.random.get_state(),
            torch=torch.get_rng_state())
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state['cuda'] = torch.cuda.get_rng_state_all()
        checkpoint['rng_state'] = state

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Restore the random states when resuming."""
        if not runner._resume:
            return  # ``load_from`` alone starts fresh draws
        state: Optional[dict] = checkpoint.get('rng_state')
        if state is None:
            message = ('RNGStateHook: the resumed checkpoint has no '
                       "'rng_state'; random draws will differ from an "
                       'uninterrupted run')
            if self.strict:
                raise KeyError(message)
            print_log(message, logger='current', level=30)
            return
        random.setstate(_as_python_state(state['python']))
        np.random.set_state(state['numpy'])
        torch.set_rng_state(state['torch'])
        if 'cuda' in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state['cuda'])
        print_log('RNGStateHook: restored the random states', logger='current')


def _as_python_state(state) -> tuple:
    """``random.setstate`` needs tuples; a loaded state may hold lists."""
    version, internal, gauss = state
    return version, tuple(internal), gauss
