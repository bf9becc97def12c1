"""Refuses to train a later stage of a multi-stage recipe from scratch, or
to resume it from the previous stage's checkpoint."""
import os.path as osp

from mmengine.hooks import Hook
from mmpretrain.registry import HOOKS


class MissingInitCheckpointError(RuntimeError):
    """A config that must start from another run's weights got none."""


class StageResumeError(RuntimeError):
    """A later stage would resume the previous stage's training state."""


@HOOKS.register_module()
class RequireLoadFromHook(Hook):
    """Stop before training when ``load_from`` is not set.

    Stage 2 of a two-stage recipe (e.g.
    ``configs/reference/ref_cifar10_stage2_supcon_simclr_gradmix_resnet18.py``)
    fine-tunes the weights of stage 1 for a few epochs with a new
    optimiser; from random weights it would train and report numbers of
    another recipe. The stage's weights come through mmengine's
    ``load_from`` (weights only), which this hook requires unless the run
    resumes its own checkpoint (``--resume``).

    With ``resume=True`` mmengine resumes *from* ``load_from`` when it is
    set: ``--resume`` together with ``--cfg-options load_from=<previous
    stage>`` would continue the previous stage's optimiser, schedule and
    epoch counter instead of this stage's. The hook refuses a resumed
    checkpoint outside the run's work dir (:class:`StageResumeError`).

    Args:
        stage (str): What ``load_from`` must point to, for the message.
            Defaults to ``'the last checkpoint of the previous stage'``.
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 stage: str = 'the last checkpoint of the previous stage'
                 ) -> None:
        self.stage = stage

    def before_train(self, runner) -> None:
        """Raise :class:`MissingInitCheckpointError` without a checkpoint,
        :class:`StageResumeError` when resuming another run's checkpoint.

        Args:
            runner (Runner): The runner of the training.
        """
        if runner._resume:
            if runner._load_from and (
                    osp.dirname(osp.abspath(runner._load_from))
                    != osp.abspath(runner.work_dir)):
                raise StageResumeError(
                    f'{runner.cfg.filename} resumes {runner._load_from}, '
                    f'outside its work dir {runner.work_dir}: with --resume '
                    'mmengine continues the training state (optimiser, '
                    'schedule, epoch) of load_from, here presumably '
                    f'{self.stage}. Continue this stage with --resume '
                    'alone; start it with load_from alone.')
            return
        if runner._load_from:
            return
        raise MissingInitCheckpointError(
            f'{runner.cfg.filename} starts from {self.stage}, but '
            "load_from is None: give it with --cfg-options load_from=PATH "
            '(tools/run_protocol.py passes the previous stage\'s last '
            'checkpoint), or --resume to continue this stage.')
