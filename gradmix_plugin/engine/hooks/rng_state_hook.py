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

    With ``num_workers > 0`` the pipeline runs in worker processes, whose
    states no checkpoint can hold. ``tools/train.py`` therefore restarts
    the training workers every epoch (no persistent workers) and seeds
    them with :func:`~gradmix_plugin.utils.resumable_worker_init_fn` from
    a seed that torch draws from the global generator stored here, so
    their draws are reproduced too.

    Validation during training (after the checkpoint of an epoch is saved)
    also draws from the global generators; the hook restores the training
    states after every validation, so training draws the same whether or
    not, and whenever, it validates.

    Args:
        strict (bool): Raise if a resumed checkpoint has no random state
            (instead of warning). Defaults to False.
    """

    priority = 'VERY_LOW'

    def __init__(self, strict: bool = False) -> None:
        self.strict = strict
        self._state_before_val: Optional[dict] = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Store the random states in the checkpoint."""
        checkpoint['rng_state'] = _get_states()

    def before_val(self, runner) -> None:
        """Remember the training random states before validating."""
        self._state_before_val = _get_states()

    def after_val(self, runner) -> None:
        """Give training back the random states it had before validating.

        Validation runs after the checkpoint of an epoch is saved and draws
        from the global generators (every data-loader iterator draws a
        seed, so does the kNN bank of ``OSRBankHook``); a run resumed from
        that checkpoint would not repeat these draws. Restoring the states
        keeps training independent of validation.
        """
        if self._state_before_val is not None:
            _set_states(self._state_before_val)
            self._state_before_val = None

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
        _set_states(state)
        print_log('RNGStateHook: restored the random states', logger='current')


def _as_python_state(state) -> tuple:
    """``random.setstate`` needs tuples; a loaded state may hold lists."""
    version, internal, gauss = state
    return version, tuple(internal), gauss


def _get_states() -> dict:
    """The Python, numpy, torch CPU (and initialised CUDA) states."""
    state = dict(
        python=random.getstate(),
        numpy=np.random.get_state(),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def _set_states(state: dict) -> None:
    """Restore states saved by :func:`_get_states` (possibly loaded)."""
    random.setstate(_as_python_state(state['python']))
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
