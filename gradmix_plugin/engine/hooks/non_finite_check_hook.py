"""Stop a diverged training run before it saves or reports anything."""
import math
import os.path as osp
from typing import Optional

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS

from ...utils.checkpoint import first_non_finite


class NonFiniteError(FloatingPointError):
    """Training produced a NaN or infinite loss, parameter or buffer."""


@HOOKS.register_module()
class NonFiniteCheckHook(Hook):
    """Stop training at the first NaN or infinite loss, parameter or
    buffer, naming it and the iteration.

    A diverged run otherwise trains on, saves a checkpoint of broken
    weights (e.g. BatchNorm ``running_var`` buffers at ``inf`` while the
    logged loss stays finite) and reports chance-level metrics with exit
    code 0. The hook checks the losses after every iteration, the model's
    parameters and buffers every ``interval`` iterations, and every
    checkpoint's weights before it is written (so a checkpoint of a
    non-finite state is never written, let alone named the latest). The
    OSR runner adds it to every training run.

    Args:
        interval (int): Check the parameters and buffers every
            ``interval`` iterations (the losses and the checkpoints are
            always checked). Defaults to 1.
    """

    priority = 'VERY_HIGH'

    def __init__(self, interval: int = 1) -> None:
        if not isinstance(interval, int) or interval < 1:
            raise ValueError(
                f'NonFiniteCheckHook interval must be a positive integer, '
                f'got {interval!r}')
        self.interval = interval

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs: Optional[dict] = None) -> None:
        """Check the losses, and the weights every ``interval``
        iterations."""
        where = f'iteration {runner.iter + 1} (epoch {runner.epoch + 1})'
        for key, value in (outputs or {}).items():
            if torch.is_tensor(value):
                value = value.detach()
            try:
                number = float(value)
            except (TypeError, ValueError, RuntimeError):
                continue  # not a scalar
            if not math.isfinite(number):
                self._stop(runner, f'the logged {key!r} is {number} at '
                           f'{where}')
        if self.every_n_train_iters(runner, self.interval):
            model = runner.model.module if is_model_wrapper(
                runner.model) else runner.model
            found = first_non_finite(
                [*model.named_parameters(), *model.named_buffers()])
            if found is not None:
                self._stop(
                    runner, f'{found[0]} has {found[1]} after {where}')

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Refuse to write a checkpoint of non-finite weights."""
        found = first_non_finite(
            (checkpoint.get('state_dict') or {}).items())
        if found is not None:
            self._stop(
                runner, f'{found[0]} has {found[1]} in the checkpoint of '
                f'iteration {runner.iter + 1} (epoch {runner.epoch + 1})')

    @staticmethod
    def _stop(runner, problem: str) -> None:
        save_file = osp.join(runner.work_dir, 'last_checkpoint')
        last = None
        if osp.isfile(save_file):
            with open(save_file) as file:
                last = file.read().strip()
        kept = (f'the last checkpoint written is {last}' if last else
                'no checkpoint was written')
        raise NonFiniteError(
            f'training diverged: {problem}. Training stopped; no checkpoint '
            f'of this state was written ({kept}). Lower the learning rate '
            '(optim_wrapper.optimizer.lr), add gradient clipping '
            '(optim_wrapper.clip_grad=dict(max_norm=...)) or check the '
            'data, then train again (or --resume from the last checkpoint).')
