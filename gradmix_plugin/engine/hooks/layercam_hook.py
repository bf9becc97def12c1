from typing import List

from mmengine.hooks import Hook
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
class LayerCAMHook(Hook):
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

        custom_hooks = [dict(type='LayerCAMHook')]

    The priority is ``'NORMAL'``: it only needs to run after the model is
    built and wrapped, which the runner does before any ``before_train``.
    """

    priority = 'NORMAL'

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
                'LayerCAMHook found no GradMix in '
                'model.data_preprocessor.batch_augments; it does nothing. '
                'Remove the hook or add dict(type="GradMix") to the batch '
                'augments.')
            return
        for gradmix in gradmix_augments:
            gradmix.attach_model(model)
            runner.logger.info(
                f'LayerCAMHook: GradMix(fill={gradmix.fill!r}, '
                f'objective={gradmix.objective!r}) attributes '
                f'{gradmix.attribution_layouts} of {type(model).__name__}')
