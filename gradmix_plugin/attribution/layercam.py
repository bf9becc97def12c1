"""Batched LayerCAM attribution maps from hooked activations.

LayerCAM (Jiang et al., `LayerCAM: Exploring Hierarchical Class Activation
Maps for Localization <https://ieeexplore.ieee.org/document/9462463>`_)
weights every activation by the positive part of its own gradient. GradMix
uses it to find what the model being trained already relies on.
"""
from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor, nn

OBJECTIVES = ('label', 'pred')


def layercam_maps(activations: Sequence[Tensor],
                  grads: Sequence[Tensor],
                  size: Tuple[int, int],
                  eps: float = 1e-8) -> Tensor:
    r"""Sum of per-layer LayerCAM maps, upsampled to ``size``.

    For every layer :math:`l` with activations :math:`A_l` and gradients
    :math:`G_l` of shape ``(B, C_l, h_l, w_l)``:

    .. math::
        M_l = \sum_c A_l \odot \mathrm{ReLU}(G_l), \quad
        \hat M_l = \frac{M_l - \min M_l}{\max M_l - \min M_l + \epsilon}

    where min and max run over the **whole batch tensor** of the layer (not
    per image), so maps of different images stay comparable. Each
    :math:`\hat M_l` is upsampled bilinearly (``align_corners=False``) to
    ``size`` and the layers are summed (not averaged), so every value lies in
    ``[0, L]`` for ``L`` layers. The maths runs in float32 outside autocast.

    Args:
        activations (Sequence[Tensor]): Hooked layer outputs, one
            ``(B, C_l, h_l, w_l)`` tensor per layer.
        grads (Sequence[Tensor]): Gradients of the attribution objective
            with respect to ``activations``, same shapes.
        size (Tuple[int, int]): Output ``(H, W)``, usually the input size.
        eps (float): Added to the min-max range. Defaults to 1e-8.

    Returns:
        Tensor: Detached maps of shape ``(B, H, W)`` in float32.
    """
    if len(activations) == 0 or len(activations) != len(grads):
        raise ValueError('layercam_maps needs one gradient per activation '
                         f'and at least one layer, got {len(activations)} '
                         f'activations and {len(grads)} gradients')
    maps = None
    device_type = activations[0].device.type
    with torch.no_grad(), torch.autocast(device_type, enabled=False):
        for index, (act, grad) in enumerate(zip(activations, grads)):
            if act.dim() != 4 or act.shape != grad.shape:
                raise ValueError(
                    f'layer {index}: activations {tuple(act.shape)} and '
                    f'gradients {tuple(grad.shape)} must be equal '
                    '(B, C, h, w) shapes')
            layer_map = (act.detach().float() *
                         grad.detach().float().clamp(min=0)).sum(
                             1, keepdim=True)
            low, high = layer_map.min(), layer_map.max()
            layer_map = (layer_map - low) / (high - low + eps)
            layer_map = F.interpolate(
                layer_map, size=tuple(size), mode='bilinear',
                align_corners=False)
            maps = layer_map if maps is None else maps + layer_map
    return maps[:, 0]


class LayerCAM:
    """Batched LayerCAM on named submodules of a model.

    Forward hooks are registered only while :meth:`capture` is open, so the
    model runs at full speed otherwise. Two ways to use it:

    - :meth:`__call__`: a standalone attribution pass (one forward, then
      ``torch.autograd.grad`` of the objective with respect to the hooked
      activations only). BatchNorm and dropout run in eval mode and every
      module's ``training`` flag is restored afterwards, so running
      statistics do not move; parameters receive no gradient.
    - :meth:`capture`: records the hooked outputs of a forward the caller
      runs itself (e.g. the training forward), so the caller can take
      ``torch.autograd.grad(loss, activations, retain_graph=True)`` and call
      :func:`layercam_maps` without a second forward.

    Args:
        model (nn.Module): The model. An mmengine ``BaseModel`` (e.g.
            mmpretrain's ``ImageClassifier``) is called as
            ``model(inputs, mode='tensor')``, which returns the logits
            without running the data preprocessor; any other module is
            called as ``model(inputs)`` and must return logits.
        target_layers (Sequence[str]): Names of the submodules whose outputs
            are attributed, as in ``model.named_modules()``, e.g.
            ``('backbone.layer3', 'backbone.layer4')``. For a ResNet stage
            the output of the stage is the post-ReLU output of its last
            block.

    Example:
        >>> cam = LayerCAM(model, ['backbone.layer3', 'backbone.layer4'])
        >>> maps = cam(inputs, objective='label', targets=labels)  # (B,H,W)
    """

    def __init__(self, model: nn.Module, target_layers: Sequence[str]):
        if isinstance(target_layers, str):
            target_layers = (target_layers, )
        self.target_layers = tuple(target_layers)
        if len(self.target_layers) == 0:
            raise ValueError('LayerCAM needs at least one target layer')
        modules = dict(model.named_modules())
        unknown = [name for name in self.target_layers if name not in modules]
        if unknown:
            depths = {name.count('.') for name in unknown}
            valid = [
                name for name in modules
                if name and name.count('.') in depths
            ]
            raise ValueError(
                f'unknown attribution layer(s) {unknown} in '
                f'{type(model).__name__}; valid module names at that depth '
                f'are: {valid}')
        self.model = model
        self.target_modules = [modules[name] for name in self.target_layers]

    @contextmanager
    def capture(self) -> Iterator[List[Optional[Tensor]]]:
        """Record the outputs of the target layers during a forward.

        Yields:
            list: One entry per target layer, in ``target_layers`` order,
            filled by the forward run inside the ``with`` block (the last
            call wins if a layer runs several times). The hooks are removed
            when the block exits, even on error.
        """
        recorded: List[Optional[Tensor]] = [None] * len(self.target_modules)

        def make_hook(index: int):

            def hook(module: nn.Module, args, output) -> None:
                if not isinstance(output, Tensor):
                    raise TypeError(
                        f'attribution layer {self.target_layers[index]!r} '
                        f'returned {type(output).__name__}, expected a '
                        'Tensor; choose a module that outputs a feature map')
                recorded[index] = output

            return hook

        handles = [
            module.register_forward_hook(make_hook(index))
            for index, module in enumerate(self.target_modules)
        ]
        try:
            yield recorded
        finally:
            for handle in handles:
                handle.remove()

    def _forward_logits(self, inputs: Tensor) -> Tensor:
        if isinstance(self.model, BaseModel):
            logits = self.model(inputs, mode='tensor')
        else:
            logits = self.model(inputs)
        if not isinstance(logits, Tensor) or logits.dim() != 2:
            raise TypeError(
                f'{type(self.model).__name__} must return (B, num_classes) '
                'logits for the label/pred objectives, got '
                f'{getattr(logits, "shape", type(logits).__name__)}')
        return logits

    def __call__(self,
                 inputs: Tensor,
                 objective: str = 'label',
                 targets: Optional[Tensor] = None) -> Tensor:
        """Compute LayerCAM maps with a standalone attribution pass.

        Args:
            inputs (Tensor): Normalised images ``(B, C, H, W)`` on the
                model's device.
            objective (str): ``'label'`` attributes the logit of ``targets``;
                ``'pred'`` attributes the largest logit. Defaults to
                ``'label'``.
            targets (Tensor, optional): Class indices ``(B,)``, required for
                ``'label'``.

        Returns:
            Tensor: Maps ``(B, H, W)`` in float32 on ``inputs.device`` (see
            :func:`layercam_maps`).
        """
        if objective not in OBJECTIVES:
            raise ValueError(f'unknown LayerCAM objective {objective!r}; '
                             f'choose one of {OBJECTIVES}')
        if objective == 'label' and targets is None:
            raise ValueError("LayerCAM objective 'label' needs `targets`")
        training_flags = [(module, module.training)
                          for module in self.model.modules()]
        try:
            self.model.eval()
            with torch.enable_grad(), self.capture() as activations:
                # A leaf that requires grad keeps the graph alive even when
                # the attributed layers are frozen; its gradient is never
                # computed because only the activations are asked for.
                logits = self._forward_logits(
                    inputs.detach().requires_grad_(True))
            missing = [
                name for name, act in zip(self.target_layers, activations)
                if act is None
            ]
            if missing:
                raise RuntimeError(
                    f'attribution layer(s) {missing} did not run in the '
                    f'forward of {type(self.model).__name__}')
            logits = logits.float()  # reduce in float32 under autocast
            if objective == 'label':
                targets = targets.to(logits.device).long().view(-1, 1)
                objective_sum = logits.gather(1, targets).sum()
            else:
                objective_sum = logits.max(dim=1).values.sum()
            grads = torch.autograd.grad(objective_sum, activations)
        finally:
            for module, training in training_flags:
                module.training = training
        return layercam_maps(activations, grads, tuple(inputs.shape[-2:]))
