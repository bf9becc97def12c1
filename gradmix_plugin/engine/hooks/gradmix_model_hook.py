import logging
import warnings
from typing import List

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmpretrain.registry import HOOKS
from torch import nn

from gradmix_plugin.models.batch_augments import GradMix


def find_gradmix_augments(model: nn.Module) -> List[GradMix]:
    """Every :class:`GradMix` in ``model.data_preprocessor.batch_augments``.

    Args:
        model (nn.Module): An unwrapped model. mmpretrain's data
            preprocessors keep their batch augments in a
            ``RandomBatchAugment`` whose ``augments`` list may hold ``None``
            (the "no augment" choice when the probabilities sum below 1).

    Returns:
        list[GradMix]: The GradMix instances, possibly empty.
    """
    preprocessor = getattr(model, 'data_preprocessor', None)
    batch_augments = getattr(preprocessor, 'batch_augments', None)
    augments = getattr(batch_augments, 'augments', [batch_augments])
    return [augment for augment in augments if isinstance(augment, GradMix)]


@HOOKS.register_module()
class GradMixModelHook(Hook):
    """Attach the model being trained to every GradMix batch augment.

    GradMix in a data preprocessor computes LayerCAM maps of the model being
    trained, which a batch augment cannot reach by itself. Before training,
    this hook unwraps ``runner.model`` (DDP and other wrappers), finds every
    :class:`~gradmix_plugin.models.batch_augments.GradMix` in
    ``model.data_preprocessor.batch_augments`` and calls
    ``attach_model(model)``, which also checks the attribution layers
    before the first step: their names, and their outputs with one forward
    of a dummy image in eval mode (a tuple or a pooled vector fails here,
    naming the module, its output and what is accepted).
    Nothing is registered on the model and no collective is run, so it works
    the same on every rank.

    Use it in a config as::

        custom_hooks = [dict(type='GradMixModelHook')]

    The priority is ``'NORMAL'``: it only needs to run after the model is
    built and wrapped, which the runner does before any ``before_train``.
    """

    priority = 'NORMAL'

    def before_run(self, runner) -> None:
        """Warn when the runner is not ``OSRRunner`` (see
        :func:`gradmix_plugin.engine.runner.warn_if_plain_runner`)."""
        from ..runner import warn_if_plain_runner

        warn_if_plain_runner(runner, type(self).__name__)

    def before_train(self, runner) -> None:
        """Attach the unwrapped model to the GradMix batch augments.

        Args:
            runner (Runner): The runner of the training process.
        """
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        gradmix_augments = find_gradmix_augments(model)
        if not gradmix_augments:
            runner.logger.warning(
                f'{type(self).__name__} found no GradMix in '
                'model.data_preprocessor.batch_augments; it does nothing. '
                'Remove the hook or add dict(type="GradMix") to the batch '
                'augments.')
            return
        for gradmix in gradmix_augments:
            gradmix.attach_model(model)
            runner.logger.info(
                f'{type(self).__name__}: GradMix(fill={gradmix.fill!r}, '
                f'objective={gradmix.objective!r}) attributes '
                f'{gradmix.attribution_layouts} of {type(model).__name__}')


@HOOKS.register_module()
class LayerCAMHook(GradMixModelHook):
    """Deprecated name of :class:`GradMixModelHook` (it computes no
    LayerCAM: it hands the model to GradMix, which does)."""

    def __init__(self) -> None:
        print_log(
            "LayerCAMHook is deprecated: use dict(type='GradMixModelHook')",
            logger='current',
            level=logging.WARNING)
        warnings.warn(
            "LayerCAMHook is deprecated: use dict(type='GradMixModelHook') "
            'in custom_hooks (same behaviour, a name that says what it '
            'does)',
            DeprecationWarning,
            stacklevel=2)
