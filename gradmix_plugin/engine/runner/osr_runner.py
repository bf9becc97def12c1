"""The runner that carries the plugin's guarantees, whatever the entry
point: the plugin's tools, mmpretrain's tools (``mim train mmpretrain``)
or ``RUNNERS.build(cfg)`` in a user's own code."""
import atexit
import copy
import gc
import logging
import os.path as osp
import weakref
from typing import Callable, TypeVar

import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmengine.runner import Runner
from mmpretrain.registry import RUNNERS
from torch import nn

from ...utils.checkpoint import (
    check_checkpoint_fits,
    find_resumable_checkpoint,
    load_checkpoint_file,
    safe_checkpoint_loading,
    use_atomic_checkpoint_hook,
)
from ...utils.config_rules import apply_config_rules, check_osr_evaluator
from ...utils.data_checks import explain_symlink_loops
from ...utils.provenance import (
    check_provenance,
    dataset_provenance,
    recorded_provenance,
    warn_resume_config_changes,
)
from ...utils.setup_env import (
    add_custom_hook,
    fix_persistent_workers,
    make_workers_resumable,
    setup_distributed,
)
from ...utils.workdir_lock import lock_work_dir, release_work_dir

#: The config line that selects this runner.
RUNNER_LINE = "runner_type = 'OSRRunner'"
_T = TypeVar('_T')
#: Runners that ran with a process group, released at exit.
_LIVE_RUNNERS: 'weakref.WeakSet[OSRRunner]' = weakref.WeakSet()
_TEARDOWN_REGISTERED = False


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DDP (or other) wrapper."""
    return model.module if is_model_wrapper(model) else model


def warn_if_plain_runner(runner: Runner, component: str) -> None:
    """Warn, once per runner, that ``component`` runs without
    :class:`OSRRunner` and so without the plugin's guarantees.

    Called by the plugin's hooks at ``before_run``.

    Args:
        runner (Runner): The running runner.
        component (str): What the config uses, e.g. ``'GradMixModelHook'``.
    """
    if isinstance(runner, OSRRunner) or getattr(
            runner, '_osr_plain_runner_warned', False):
        return
    runner._osr_plain_runner_warned = True
    print_log(
        f'{component} runs under {type(runner).__name__}, not OSRRunner: '
        'osr_split / data_root overrides, provenance records and checks, '
        'the osr_metrics.json report, exact resume and the process-group '
        f'teardown are off. Add the line `{RUNNER_LINE}` to the config '
        "(the plugin's configs/_base_/default_runtime.py has it).",
        logger='current',
        level=logging.WARNING)


def teardown_distributed() -> None:
    """Destroy the process group while the interpreter is still alive.

    Registered with :mod:`atexit` by :class:`OSRRunner` after a successful
    ``train()`` / ``test()`` under a launcher: gloo's worker threads live
    as long as the process-group object, and one still alive when the
    interpreter exits can abort the process (``terminate called without an
    active exception``) after the work succeeded. Every rank waits for the
    others (a barrier), destroys the group, drops the DDP wrappers of the
    runners still alive and collects the garbage. Nothing is done when no
    group exists (e.g. the user's code destroyed it).
    """
    if not (torch_dist.is_available() and torch_dist.is_initialized()):
        return
    try:
        torch_dist.barrier()
        torch_dist.destroy_process_group()
    except Exception as err:  # another rank failed: nothing to wait for
        print_log(f'process group teardown: {err}', logger='current')
    for runner in list(_LIVE_RUNNERS):
        runner.model = unwrap(runner.model)
    gc.collect()


def abort_distributed() -> None:
    """Abort the process group after an error (needs no other rank, so a
    failing rank neither hangs nor hides its traceback)."""
    if torch_dist.is_available() and torch_dist.is_initialized():
        try:
            torch_dist.distributed_c10d._abort_process_group()
        except Exception as err:  # not every backend can abort
            print_log(f'could not abort the process group: {err}',
                      logger='current')


@RUNNERS.register_module()
class OSRRunner(Runner):
    """mmengine's ``Runner`` with the plugin's guarantees.

    Select it with one config line, ``runner_type = 'OSRRunner'`` (the
    plugin's ``configs/_base_/default_runtime.py`` has it). mmengine's and
    mmpretrain's tools then build it with ``RUNNERS.build(cfg)``, as does
    the plugin's ``tools/train.py`` / ``tools/test.py``; the behaviour is
    the same whichever entry point built it. :meth:`from_cfg` works on a
    copy of the config, with ``--cfg-options`` already merged (the config
    file as read, ``cfg.filename``, says what changed).

    Extension points, in the order they run (override and call ``super()``
    in a subclass; each is documented below):

    ``from_cfg(cfg)``:
        1. :meth:`prepare_cfg`: the config rules
           (:func:`~gradmix_plugin.utils.config_rules.apply_config_rules`:
           ignored top-level keys refused, ``osr_split`` and ``data_root``
           propagated, ``data_preprocessor`` merged), dataloader settings
           (no persistent workers without workers, training workers seeded
           for exact resume), then :meth:`add_hooks`.
        2. :meth:`add_hooks`: ``ProvenanceHook``, ``SyncBuffersHook``
           under a launcher, ``OSRReportHook``, ``NonFiniteCheckHook``,
           ``FailFastHook``;
           ``AtomicCheckpointHook`` in place of ``CheckpointHook``.
        3. The exclusive lock of the work dir (rank 0; released with the
           runner or the process, also on SIGKILL), then
           :meth:`setup_distributed`: gloo on CPU.
        4. :meth:`check_before_build`: find what ``resume`` resumes (the
           newest intact checkpoint if ``last_checkpoint`` names a lost
           one), check its provenance against the training set and warn
           about changed settings.
        5. mmengine builds the runner.
        6. :meth:`check_after_build`: the resumed checkpoint fits the
           model exactly.

    ``train()`` / ``test()``: :meth:`check_before_test` (before ``test``
    only: an ``OSRMetric`` in ``test_evaluator``, provenance and fit of
    ``load_from``), then the loop inside :meth:`run_guarded` (local
    checkpoints loaded safely; on an error the process group is aborted,
    on success it is destroyed at exit by :func:`teardown_distributed`).
    Checkpoints the runner reads itself go through :meth:`read_checkpoint`.

    The top-level config key ``allow_mismatch = True`` turns a provenance
    mismatch (other protocol, split, classes or dataset) into a warning.
    """

    @classmethod
    def from_cfg(cls, cfg: Config) -> 'OSRRunner':
        """Build the runner from a (merged) config.

        Args:
            cfg (Config): The config; it is not changed.

        Returns:
            OSRRunner: The runner.
        """
        cfg = copy.deepcopy(cfg)
        cfg.setdefault('launcher', 'none')
        cfg = cls.prepare_cfg(cfg)
        # One run per work dir (held until the runner is released or the
        # process ends, also by SIGKILL).
        locked = lock_work_dir(cfg)
        try:
            cls.setup_distributed(cfg)
            cls.check_before_build(cfg)
            runner = super().from_cfg(cfg)
            runner.check_after_build()
        except BaseException:
            if locked:
                release_work_dir(cfg.work_dir)
            raise
        if locked:
            weakref.finalize(runner, release_work_dir, cfg.work_dir)
        return runner

    @classmethod
    def prepare_cfg(cls, cfg: Config) -> Config:
        """Apply the config rules and the dataloader settings.

        Args:
            cfg (Config): A copy of the config, updated in place.

        Returns:
            Config: The config to build from.
        """
        apply_config_rules(cfg)
        if cfg.get('work_dir', None) is None and cfg.filename:
            cfg.work_dir = osp.join(
                './work_dirs',
                osp.splitext(osp.basename(cfg.filename))[0])
        fix_persistent_workers(cfg)
        make_workers_resumable(cfg.get('train_dataloader', None))
        cls.add_hooks(cfg)
        return cfg

    @classmethod
    def add_hooks(cls, cfg: Config) -> None:
        """Add the plugin's hooks to ``custom_hooks`` (each once).

        Args:
            cfg (Config): The config, updated in place.
        """
        add_custom_hook(cfg, 'ProvenanceHook')
        if cfg.launcher != 'none':
            # DDP does not broadcast buffers here: average the BatchNorm
            # statistics before validation and saving, so that validation,
            # the checkpoint and testing see the same model.
            add_custom_hook(cfg, 'SyncBuffersHook')
        add_custom_hook(cfg, 'OSRReportHook')
        add_custom_hook(cfg, 'NonFiniteCheckHook')
        add_custom_hook(cfg, 'FailFastHook')
        use_atomic_checkpoint_hook(cfg)

    @classmethod
    def setup_distributed(cls, cfg: Config) -> None:
        """Prepare the process group for ``cfg.launcher``
        (:func:`gradmix_plugin.utils.setup_distributed`)."""
        setup_distributed(cfg, cfg.launcher)

    @classmethod
    def check_before_build(cls, cfg: Config) -> None:
        """Find what ``resume`` resumes; refuse a checkpoint trained on
        other data.

        Without a checkpoint to resume, say so and train from scratch
        (mmengine would log "Auto resumed from the latest checkpoint
        None."). The found path becomes ``cfg.load_from``.

        Args:
            cfg (Config): The prepared config, updated in place.

        Raises:
            ProvenanceMismatchError: Unless ``allow_mismatch``.
        """
        if not cfg.get('resume', False):
            return
        path = cfg.get('load_from', None) or find_resumable_checkpoint(
            cfg.work_dir)
        if path is None:
            print_log(
                f'--resume: no checkpoint found in {cfg.work_dir} (no '
                'last_checkpoint file); training starts from scratch',
                logger='current',
                level=logging.WARNING)
            cfg.resume = False
            return
        checkpoint = cls.read_checkpoint(path)
        check_provenance(
            recorded_provenance(checkpoint),
            dataset_provenance(cfg, 'train_dataloader'), path,
            bool(cfg.get('allow_mismatch', False)))
        warn_resume_config_changes(checkpoint, cfg, path)
        cfg.load_from = path

    @staticmethod
    def read_checkpoint(path: str) -> dict:
        """Read a checkpoint on the CPU, local files safely.

        Args:
            path (str): Path or URL.

        Returns:
            dict: The checkpoint.
        """
        return load_checkpoint_file(path, 'cpu')

    def check_after_build(self) -> None:
        """Refuse a resumed checkpoint that does not fit the model."""
        if self._resume and self._load_from:
            check_checkpoint_fits(unwrap(self.model), self._load_from)

    def check_before_test(self) -> None:
        """Before testing: the test evaluator has an ``OSRMetric``, and the
        ``load_from`` checkpoint records the data of the test set and fits
        the model exactly (mmengine itself only warns).

        Raises:
            ValueError: No ``OSRMetric``.
            ProvenanceMismatchError: Unless ``allow_mismatch``.
            CheckpointMismatchError: The checkpoint does not fit.
        """
        check_osr_evaluator(self.cfg.get('test_evaluator'), 'test_evaluator')
        if not self._load_from or self._has_loaded:
            return
        loaded = self.read_checkpoint(self._load_from)
        check_provenance(
            recorded_provenance(loaded),
            dataset_provenance(self.cfg, 'test_dataloader'), self._load_from,
            bool(self.cfg.get('allow_mismatch', False)))
        check_checkpoint_fits(unwrap(self.model), self._load_from, loaded)

    def run_guarded(self, loop: Callable[[], _T]) -> _T:
        """Run ``train`` / ``test`` of mmengine's Runner.

        Local checkpoints load through the plugin's safe loader inside.
        Under a process group an error aborts it; on success it is torn
        down at exit (:func:`teardown_distributed`).

        Args:
            loop (Callable): The bound method of the parent class.

        Returns:
            What ``loop`` returns.
        """
        try:
            with safe_checkpoint_loading(), explain_symlink_loops():
                result = loop()
        except BaseException:
            if self.distributed:
                abort_distributed()
            raise
        if self.distributed:
            _schedule_teardown(self)
        return result

    def train(self) -> nn.Module:
        """Train, see :meth:`run_guarded`."""
        return self.run_guarded(super().train)

    def test(self) -> dict:
        """Check, then test; see :meth:`check_before_test` and
        :meth:`run_guarded`."""
        self.check_before_test()
        return self.run_guarded(super().test)

    def val(self) -> dict:
        """Validate, see :meth:`run_guarded`."""
        return self.run_guarded(super().val)


def _schedule_teardown(runner: OSRRunner) -> None:
    global _TEARDOWN_REGISTERED
    _LIVE_RUNNERS.add(runner)
    if not _TEARDOWN_REGISTERED:
        atexit.register(teardown_distributed)
        _TEARDOWN_REGISTERED = True


# mmengine's and mmpretrain's tools build with mmengine's root registry,
# which does not look into mmpretrain's: registered there too, so that
# ``runner_type = 'OSRRunner'`` works without a scope prefix.
MMENGINE_RUNNERS.register_module(module=OSRRunner)
