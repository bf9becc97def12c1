"""Hooks used by the reliability tests inside ``tools/train.py`` runs.

Imported through ``custom_imports`` (the tests put this folder on
``PYTHONPATH``), so they are registered in the training processes.
"""
import json
import os
import os.path as osp
import signal
import time

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


@HOOKS.register_module()
class LossRecorderHook(Hook):
    """Write every training iteration's losses of this rank to
    ``<work_dir>/losses_rank<r>.json`` (mmengine logs rank 0 only)."""

    def before_train(self, runner) -> None:
        self.records = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        self.records.append(
            {key: float(torch.as_tensor(value).detach())
             for key, value in outputs.items()})

    def after_train(self, runner) -> None:
        path = osp.join(runner.work_dir, f'losses_rank{get_rank()}.json')
        with open(path, 'w') as file:
            json.dump(self.records, file)


@HOOKS.register_module()
class PauseMidEpochHook(Hook):
    """After iteration ``iter_in_epoch`` (1-based) of epoch ``epoch``
    (1-based), write ``marker`` and wait to be killed."""

    def __init__(self, epoch: int, iter_in_epoch: int, marker: str) -> None:
        self.epoch = epoch
        self.iter_in_epoch = iter_in_epoch
        self.marker = marker

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if (runner.epoch + 1 == self.epoch
                and batch_idx + 1 == self.iter_in_epoch):
            with open(self.marker, 'w') as file:
                file.write(str(runner.iter + 1))  # iterations done
            time.sleep(300)


@HOOKS.register_module()
class ValMetricsRecorderHook(Hook):
    """Write the metrics of every validation to
    ``<work_dir>/val_metrics.json`` (rank 0)."""

    def before_train(self, runner) -> None:
        self.records = []

    def after_val_epoch(self, runner, metrics=None) -> None:
        if get_rank() == 0:
            self.records.append(dict(metrics or {}))
            path = osp.join(runner.work_dir, 'val_metrics.json')
            with open(path, 'w') as file:
                json.dump(self.records, file)


@HOOKS.register_module()
class KillWhileSavingHook(Hook):
    """SIGKILL this process while the checkpoint of epoch ``epoch``
    (1-based) is being saved: after the checkpoint hook started saving it
    (mmengine's ``CheckpointHook`` has removed the checkpoint that
    ``max_keep_ckpts`` drops by then), before the file is written."""

    priority = 'VERY_LOW'

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if runner.epoch + 1 == self.epoch:
            os.kill(os.getpid(), signal.SIGKILL)
