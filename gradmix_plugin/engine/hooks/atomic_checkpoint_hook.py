"""Checkpoints that a kill at any moment cannot lose."""
import contextlib
import logging
import os
import os.path as osp
from typing import Iterator, Sequence

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend
from mmengine.hooks import CheckpointHook
from mmengine.logging import MMLogger
from mmpretrain.registry import HOOKS

from ...utils.checkpoint import replace_file_atomically

#: The deprecation messages (logged, not warned) of the ``FileClient``
#: that mmengine's ``CheckpointHook.before_train`` and ``save_checkpoint``
#: build whatever the config says.
FILE_CLIENT_DEPRECATIONS = (
    '"FileClient" will be deprecated in future. Please use io functions in '
    'https://mmengine.readthedocs.io/en/latest/api/fileio.html#file-io',
    '"HardDiskBackend" is the alias of "LocalBackend" and the former will '
    'be deprecated in future.')


class _DropMessages(logging.Filter):
    """Drop the log records of exactly the given messages."""

    def __init__(self, messages: Sequence[str]) -> None:
        super().__init__()
        self.messages = set(messages)

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() not in self.messages


@contextlib.contextmanager
def _without_file_client_deprecations() -> Iterator[None]:
    logger = MMLogger.get_current_instance()
    drop = _DropMessages(FILE_CLIENT_DEPRECATIONS)
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose checkpoints survive a kill while saving.

    mmengine's hook (with ``max_keep_ckpts``) first removes the oldest
    checkpoint, then writes the new one in place, then updates
    ``last_checkpoint``: a run killed in between can be left with no
    complete checkpoint and a ``last_checkpoint`` naming a missing file.
    This hook writes the checkpoint under a temporary name (a hidden
    ``.<name>.tmp-<pid>`` in the same folder), flushes it to disk, renames
    it into place, replaces ``last_checkpoint`` atomically and only then
    removes the checkpoint that ``max_keep_ckpts`` drops. At every moment
    the work dir holds the previous complete checkpoint or the new one, and
    ``last_checkpoint`` names a complete file. Same arguments as
    ``CheckpointHook``; the OSR runner uses it in place of
    ``CheckpointHook``. Checkpoints to another file backend than the local
    disk are saved as ``CheckpointHook`` does.
    """

    def before_train(self, runner) -> None:
        """As ``CheckpointHook``, without the deprecation warnings of the
        ``FileClient`` that mmengine's hook builds whatever the config
        says (only those messages are dropped, only meanwhile)."""
        with _without_file_client_deprecations():
            super().before_train(runner)

    def _save_checkpoint_with_step(self, runner, step, meta) -> None:
        if not isinstance(self.file_backend, LocalBackend):
            super()._save_checkpoint_with_step(runner, step, meta)
            return
        dropped = None
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids and
                                            self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                dropped = self.keep_ckpt_ids.popleft()
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids',
                                           list(self.keep_ckpt_ids))
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = osp.join(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        temporary = f'.{filename}.tmp-{os.getpid()}'
        with _without_file_client_deprecations():
            runner.save_checkpoint(
                self.out_dir,
                temporary,
                self.file_client_args,
                save_optimizer=self.save_optimizer,
                save_param_scheduler=self.save_param_scheduler,
                meta=meta,
                by_epoch=self.by_epoch,
                backend_args=self.backend_args,
                **self.args)
        if not is_main_process():
            return
        temporary = osp.join(self.out_dir, temporary)
        with open(temporary, 'rb') as file:
            os.fsync(file.fileno())
        os.replace(temporary, self.last_ckpt)
        replace_file_atomically(
            osp.join(runner.work_dir, 'last_checkpoint'), self.last_ckpt)
        if dropped is not None:
            path = osp.join(self.out_dir, self.filename_tmpl.format(dropped))
            if path != self.last_ckpt and osp.isfile(path):
                os.remove(path)
