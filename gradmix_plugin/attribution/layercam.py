"""Batched LayerCAM attribution maps from hooked activations.

LayerCAM (Jiang et al., `LayerCAM: Exploring Hierarchical Class Activation
Maps for Localization <https://ieeexplore.ieee.org/document/9462463>`_)
weights every activation by the positive part of its own gradient. GradMix
uses it to find what the model being trained already relies on.

The attributed layers may output feature maps ``(B, C, h, w)`` (CNNs), token
sequences ``(B, N, C)`` (vision transformers, Swin blocks) or channels-last
maps ``(B, h, w, C)`` (e.g. timm's Swin stages); :class:`LayerCAM` turns all
of them into ``(B, C, h, w)`` maps.
"""
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel
from torch import Tensor, nn

OBJECTIVES = ('label', 'pred')
LAYOUTS = ('nchw', 'nlc', 'nhwc')
ACCEPTED_OUTPUTS = ('a Tensor: a (B, C, h, w) feature map, (B, N, C) tokens '
                    'or a (B, h, w, C) channels-last map')
PROBE_SIZE = (32, 32)


class AttributionLayerError(TypeError, ValueError):
    """An attribution layer whose output cannot be turned into a map."""


@dataclass(frozen=True)
class AttributionLayer:
    """One attributed module and how its output becomes a ``(B, C, h, w)``
    map.

    Args:
        name (str): The module name, as in ``model.named_modules()``.
        layout (str, optional): ``'nchw'``, ``'nlc'`` (tokens) or
            ``'nhwc'``; None detects it (see :class:`LayerCAM`).
            Defaults to None.
        grid (Tuple[int, int], optional): The ``(h, w)`` patch grid of a
            token layer; None takes it from the model. Defaults to None.
        extra_tokens (int, optional): Leading non-patch tokens of a token
            layer (class, distillation, register tokens), dropped; None
            takes the number from the model. Defaults to None.
    """

    name: str
    layout: Optional[str] = None
    grid: Optional[Tuple[int, int]] = None
    extra_tokens: Optional[int] = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ValueError('an attribution layer needs a module name, got '
                             f'{self.name!r}')
        if self.layout is not None and self.layout not in LAYOUTS:
            raise ValueError(
                f'attribution layer {self.name!r}: unknown layout '
                f'{self.layout!r}; choose one of {LAYOUTS} or None (detect)')
        if self.grid is not None:
            grid = tuple(self.grid)
            if len(grid) != 2 or not all(
                    isinstance(side, int) and side > 0 for side in grid):
                raise ValueError(
                    f'attribution layer {self.name!r}: grid must be two '
                    f'positive ints (h, w), got {self.grid!r}')
            object.__setattr__(self, 'grid', grid)
        if self.extra_tokens is not None and not (
                isinstance(self.extra_tokens, int) and self.extra_tokens >= 0):
            raise ValueError(
                f'attribution layer {self.name!r}: extra_tokens must be an '
                f'int >= 0, got {self.extra_tokens!r}')
        if self.layout in ('nchw', 'nhwc') and (
                self.grid is not None or self.extra_tokens is not None):
            raise ValueError(
                f'attribution layer {self.name!r}: grid and extra_tokens '
                f"only apply to token layers (layout 'nlc' or None), got "
                f'layout {self.layout!r}')

    @classmethod
    def build(cls, entry: Union[str, dict,
                                'AttributionLayer']) -> 'AttributionLayer':
        """Build from a module name or a ``dict(name=..., layout=...,
        grid=..., extra_tokens=...)``.

        Args:
            entry (str | dict | AttributionLayer): The entry of an
                ``attribution_layers`` list.

        Returns:
            AttributionLayer: The parsed entry.
        """
        if isinstance(entry, cls):
            return entry
        if isinstance(entry, str):
            return cls(entry)
        if isinstance(entry, dict):
            unknown = set(entry) - set(cls.__dataclass_fields__)
            if unknown or 'name' not in entry:
                raise ValueError(
                    f'attribution layer entry {dict(entry)!r}: accepted keys '
                    f'are {tuple(cls.__dataclass_fields__)} with `name` '
                    f'required; unknown: {sorted(unknown)}')
            return cls(**entry)
        raise TypeError(
            'an attribution layer is a module name or a dict(name=..., '
            f'layout=..., grid=..., extra_tokens=...), got {entry!r}')


def parse_attribution_layers(
        entries: Union[str, dict, Sequence[Union[str, dict]]]
) -> Tuple[AttributionLayer, ...]:
    """Parse an ``attribution_layers`` option.

    Args:
        entries (str | dict | Sequence[str | dict]): One entry or a list of
            them (see :meth:`AttributionLayer.build`).

    Returns:
        Tuple[AttributionLayer, ...]: At least one layer.
    """
    if isinstance(entries, (str, dict)):
        entries = (entries, )
    layers = tuple(AttributionLayer.build(entry) for entry in entries)
    if len(layers) == 0:
        raise ValueError('GradMix and LayerCAM need at least one '
                         'attribution layer, got none')
    return layers


def layercam_maps(activations: Sequence[Tensor],
                  grads: Sequence[Tensor],
                  size: Tuple[int, int],
                  eps: float = 1e-8) -> Tensor:
    r"""Sum of per-layer LayerCAM maps, upsampled to ``size``.

    For every layer :math:`l` with activations :math:`A_l` and gradients
    :math:`G_l` of shape ``(B, C_l, h_l, w_l)``:

    .. math::
        M_l = \mathrm{ReLU}\Big(\sum_c A_l \odot \mathrm{ReLU}(G_l)\Big),
        \quad
        \hat M_l = \frac{M_l - \min M_l}{\max M_l - \min M_l + \epsilon}

    where min and max run over the **whole batch tensor** of the layer (not
    per image), so maps of different images stay comparable. The outer ReLU
    of LayerCAM changes nothing for non-negative activations (the post-ReLU
    outputs of ResNet stages) and removes the negative evidence of layers
    with signed outputs (transformer tokens, ConvNeXt stages). Each
    :math:`\hat M_l` is upsampled bilinearly (``align_corners=False``) to
    ``size`` and the layers are summed (not averaged), so every value lies in
    ``[0, L]`` for ``L`` layers. The maths runs in float32 outside autocast.

    Args:
        activations (Sequence[Tensor]): Hooked layer outputs as
            ``(B, C_l, h_l, w_l)`` maps, one per layer (what
            :meth:`LayerCAM.capture` records).
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
            if act.dim() != 4:
                raise ValueError(
                    f'layer {index}: activations {tuple(act.shape)} are not '
                    'a (B, C, h, w) map; record them with LayerCAM.capture, '
                    'which turns (B, N, C) tokens and (B, h, w, C) maps into '
                    '(B, C, h, w) maps')
            if act.shape != grad.shape:
                raise ValueError(
                    f'layer {index}: activations {tuple(act.shape)} and '
                    f'gradients {tuple(grad.shape)} must be equal '
                    '(B, C, h, w) shapes')
            layer_map = (act.detach().float() *
                         grad.detach().float().clamp(min=0)).sum(
                             1, keepdim=True).clamp(min=0)
            low, high = layer_map.min(), layer_map.max()
            layer_map = (layer_map - low) / (high - low + eps)
            layer_map = F.interpolate(
                layer_map, size=tuple(size), mode='bilinear',
                align_corners=False)
            maps = layer_map if maps is None else maps + layer_map
    return maps[:, 0]


def describe_output(output: Any) -> str:
    """A short description of a module output for error messages."""
    if isinstance(output, Tensor):
        return f'Tensor {tuple(output.shape)}'
    if isinstance(output, (tuple, list)):
        items = ', '.join(describe_output(item) for item in output)
        return f'{type(output).__name__} ({items})'
    return type(output).__name__


def _is_shape_pair(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(side, int) and not isinstance(side, bool)
        for side in value)


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

    Every layer output becomes a ``(B, C, h, w)`` map (its ``layout``):

    - ``'nchw'``: a feature map, used as it is (ResNet stages, ConvNeXt
      stages, timm CNNs);
    - ``'nhwc'``: a channels-last map ``(B, h, w, C)``, permuted;
    - ``'nlc'``: tokens ``(B, N, C)``; the first ``extra_tokens`` (class,
      distillation, register tokens) are dropped and the rest, in row-major
      order, reshaped to the ``(h, w)`` patch grid.

    Unless an entry of ``target_layers`` says otherwise, a 3-D output is
    ``'nlc'`` and a 4-D output ``'nchw'``, or ``'nhwc'`` inside a module
    declaring ``output_fmt='NHWC'`` (timm's Swin). For tokens, the grid is
    the ``(h, w)`` shape the module is called with (mmpretrain's Swin
    blocks, ``forward(x, hw_shape)``), else the patch grid of the nearest
    enclosing module exposing one (mmpretrain's ``patch_resolution``,
    timm's ``patch_embed.grid_size``); the extra tokens are its
    ``num_extra_tokens`` (mmpretrain: 1 for ViT, 2 for DeiT, 0 for Swin) or
    ``num_prefix_tokens`` (timm), else 0. The number of tokens must equal
    ``extra_tokens + h * w``. Tuples (e.g. mmpretrain's Swin stages and
    patch embeddings), pooled vectors and any other output are refused.

    The token and channels-last maps are views of the layer output through
    which the forward continues (the hook returns an equal tensor rebuilt
    from the map; with extra tokens it is a copy), so the gradient of the
    map is the gradient of the patch tokens, in any forward the caller runs.

    At construction, one forward of a dummy ``(1, C, H, W)`` zero image in
    eval mode and without gradients checks every layer (``C`` is the input
    channels of the first ``Conv2d``, else 3; ``H, W`` the input size of
    the first patch embedding declaring one, else 32x32). A wrong name, a
    module that does not run or an output of none of the accepted kinds
    fails there, before any training step.

    Args:
        model (nn.Module): The model. An mmengine ``BaseModel`` (e.g.
            mmpretrain's ``ImageClassifier``) is called as
            ``model(inputs, mode='tensor')``, which returns the logits
            without running the data preprocessor; any other module is
            called as ``model(inputs)`` and must return logits.
        target_layers (Sequence[str | dict]): The attributed submodules, as
            named in ``model.named_modules()``, e.g.
            ``('backbone.layer3', 'backbone.layer4')`` (for a ResNet stage
            the post-ReLU output of its last block), or
            ``dict(name=..., layout=..., grid=(h, w), extra_tokens=k)``
            entries overriding the detection (see
            :class:`AttributionLayer`).

    Example:
        >>> cam = LayerCAM(model, ['backbone.layer3', 'backbone.layer4'])
        >>> maps = cam(inputs, objective='label', targets=labels)  # (B,H,W)
    """

    def __init__(self, model: nn.Module,
                 target_layers: Sequence[Union[str, dict]]):
        self.layers = parse_attribution_layers(target_layers)
        self.target_layers = tuple(layer.name for layer in self.layers)
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
        # Every layer and its enclosing modules, nearest first.
        self._enclosing = [[
            modules[name.rsplit('.', depth)[0]]
            for depth in range(name.count('.') + 1)
        ] + [model] for name in self.target_layers]
        self.layouts: List[str] = [''] * len(self.layers)
        self.probe()

    # ------------------------------------------------------------------
    # layer outputs -> (B, C, h, w) maps
    # ------------------------------------------------------------------
    def _find(self, index: int,
              getters: Sequence[Tuple[str, Any]]) -> Tuple[Any, str]:
        """The first value a getter finds on the nearest enclosing module.

        Returns:
            tuple: The value (None if nothing found) and where it came from.
        """
        for module in self._enclosing[index]:
            for label, getter in getters:
                value = getter(module)
                if value is not None:
                    return value, f'{type(module).__name__}.{label}'
        return None, ''

    def _detect_layout(self, index: int, output: Tensor) -> str:
        if output.dim() == 3:
            return 'nlc'
        output_fmt, _ = self._find(
            index, [('output_fmt', lambda m: getattr(m, 'output_fmt', None))])
        return 'nhwc' if getattr(output_fmt, 'value', output_fmt) == 'NHWC' \
            else 'nchw'

    def _token_grid(self, index: int, args: tuple,
                    output: Tensor) -> Tuple[int, Tuple[int, int]]:
        layer = self.layers[index]
        extra, extra_source = layer.extra_tokens, 'given'
        if extra is None:
            extra, extra_source = self._find(index, [
                ('num_extra_tokens',
                 lambda m: getattr(m, 'num_extra_tokens', None)),
                ('num_prefix_tokens',
                 lambda m: getattr(m, 'num_prefix_tokens', None)),
            ])
            extra, extra_source = (0, 'default') if extra is None else (
                int(extra), extra_source)
        grid, grid_source = layer.grid, 'given'
        if grid is None:
            grid = next((tuple(arg) for arg in args[1:]
                         if _is_shape_pair(arg)), None)
            grid_source = 'the (h, w) argument of its call'
        if grid is None:
            grid, grid_source = self._find(index, [
                ('patch_resolution',
                 lambda m: getattr(m, 'patch_resolution', None)),
                ('patch_embed.grid_size', lambda m: getattr(
                    getattr(m, 'patch_embed', None), 'grid_size', None)),
            ])
        name = layer.name
        if grid is None:
            raise AttributionLayerError(
                f'attribution layer {name!r} outputs tokens '
                f'{tuple(output.shape)} but no patch grid is known: its call '
                'passes no (h, w) shape and no enclosing module exposes '
                '`patch_resolution` (mmpretrain) or `patch_embed.grid_size` '
                f'(timm); give it: dict(name={name!r}, grid=(h, w), '
                'extra_tokens=k)')
        grid = (int(grid[0]), int(grid[1]))
        if output.shape[1] != extra + grid[0] * grid[1]:
            raise AttributionLayerError(
                f'attribution layer {name!r} outputs {output.shape[1]} tokens '
                f'{tuple(output.shape)}, but {extra} extra token(s) '
                f'({extra_source}) and the patch grid {grid} ({grid_source}) '
                f'make {extra + grid[0] * grid[1]} (an input size other than '
                "the backbone's?); give them: "
                f'dict(name={name!r}, grid=(h, w), extra_tokens=k)')
        return extra, grid

    def _to_map(self, index: int, args: tuple,
                output: Any) -> Tuple[Tensor, Optional[Tensor]]:
        """The ``(B, C, h, w)`` map of a layer output and the output the
        forward continues with (None: unchanged)."""
        layer = self.layers[index]
        if not isinstance(output, Tensor) or output.dim() not in (3, 4):
            module = self.target_modules[index]
            children = [
                f'{layer.name}.{child}'
                for child, _ in module.named_children()
            ]
            items = output if isinstance(output, (tuple, list)) else [output]
            if any(isinstance(item, Tensor) and item.dim() == 2
                   for item in items):
                hint = ('a pooled (B, C) vector has no spatial map: name a '
                        'module before the pooling')
            elif children:
                hint = f'name one of its submodules instead: {children}'
            else:
                hint = 'name a module with one of these outputs'
            raise AttributionLayerError(
                f'attribution layer {layer.name!r} '
                f'({type(module).__name__}) returned '
                f'{describe_output(output)}; accepted is '
                f'{ACCEPTED_OUTPUTS}; {hint}')
        layout = layer.layout or self._detect_layout(index, output)
        if output.dim() != (3 if layout == 'nlc' else 4):
            raise AttributionLayerError(
                f'attribution layer {layer.name!r} has layout {layout!r} but '
                f'returned Tensor {tuple(output.shape)}; accepted is '
                "'nlc' for (B, N, C) and 'nchw' or 'nhwc' for 4-D outputs")
        if layout == 'nchw':
            self.layouts[index] = 'nchw'
            return output, None
        if layout == 'nhwc':
            self.layouts[index] = 'nhwc'
            feature_map = output.permute(0, 3, 1, 2)
            return feature_map, feature_map.permute(0, 2, 3, 1)
        extra, grid = self._token_grid(index, args, output)
        self.layouts[index] = f'nlc, {extra} extra token(s), grid {grid}'
        feature_map = output[:, extra:].transpose(1, 2).unflatten(2, grid)
        patches = feature_map.flatten(2).transpose(1, 2)
        if extra:
            patches = torch.cat([output[:, :extra], patches], dim=1)
        return feature_map, patches

    # ------------------------------------------------------------------
    # forwards
    # ------------------------------------------------------------------
    @contextmanager
    def capture(self) -> Iterator[List[Optional[Tensor]]]:
        """Record the maps of the target layers during a forward.

        Yields:
            list: One ``(B, C, h, w)`` map per target layer, in
            ``target_layers`` order, filled by the forward run inside the
            ``with`` block (the last call wins if a layer runs several
            times). The hooks are removed when the block exits, even on
            error.
        """
        recorded: List[Optional[Tensor]] = [None] * len(self.target_modules)

        def make_hook(index: int):

            def hook(module: nn.Module, args, output) -> Optional[Tensor]:
                recorded[index], replacement = self._to_map(
                    index, args, output)
                return replacement

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

    @contextmanager
    def _eval_mode(self) -> Iterator[None]:
        """Eval mode inside the block, every ``training`` flag restored."""
        training_flags = [(module, module.training)
                          for module in self.model.modules()]
        try:
            self.model.eval()
            yield
        finally:
            for module, training in training_flags:
                module.training = training

    def _forward(self, inputs: Tensor) -> Any:
        if isinstance(self.model, BaseModel):
            return self.model(inputs, mode='tensor')
        return self.model(inputs)

    def _check_ran(self, activations: Sequence[Optional[Tensor]]) -> None:
        missing = [
            name for name, act in zip(self.target_layers, activations)
            if act is None
        ]
        if missing:
            raise RuntimeError(
                f'attribution layer(s) {missing} did not run in the '
                f'forward of {type(self.model).__name__}')

    def probe_input(self) -> Tensor:
        """The dummy image of :meth:`probe` (see the class docstring).

        Returns:
            Tensor: Zeros ``(1, C, H, W)`` on the model's device, in the
            dtype of its first floating parameter.
        """
        modules = list(self.model.modules())
        channels = next((module.in_channels for module in modules
                         if isinstance(module, nn.Conv2d)), 3)
        size = next((tuple(size) for size in (
            getattr(module, 'init_input_size', None)
            or getattr(module, 'img_size', None) for module in modules)
                     if _is_shape_pair(size)), PROBE_SIZE)
        param = next((param for param in self.model.parameters()
                      if param.is_floating_point()), None)
        return torch.zeros(
            1, channels, *size,
            device=None if param is None else param.device,
            dtype=None if param is None else param.dtype)

    def probe(self) -> None:
        """Check every layer with one forward of :meth:`probe_input`.

        Eval mode, no gradient, every ``training`` flag restored; it fills
        :attr:`layouts` (the resolved layout of every layer).

        Raises:
            AttributionLayerError: A layer output is not accepted.
            RuntimeError: A layer did not run, or the forward of the dummy
                image failed for another reason.
        """
        inputs = self.probe_input()
        with torch.no_grad(), self._eval_mode(), \
                self.capture() as activations:
            try:
                self._forward(inputs)
            except AttributionLayerError:
                raise
            except Exception as error:
                raise RuntimeError(
                    f'LayerCAM checks its layers {list(self.target_layers)} '
                    f'with one forward of a dummy {tuple(inputs.shape)} '
                    f'image; the forward of {type(self.model).__name__} '
                    f'failed: {error}') from error
        self._check_ran(activations)

    def _forward_logits(self, inputs: Tensor) -> Tensor:
        logits = self._forward(inputs)
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
        with self._eval_mode():
            with torch.enable_grad(), self.capture() as activations:
                # A leaf that requires grad keeps the graph alive even when
                # the attributed layers are frozen; its gradient is never
                # computed because only the activations are asked for.
                logits = self._forward_logits(
                    inputs.detach().requires_grad_(True))
            self._check_ran(activations)
            logits = logits.float()  # reduce in float32 under autocast
            if objective == 'label':
                targets = targets.to(logits.device).long().view(-1, 1)
                objective_sum = logits.gather(1, targets).sum()
            else:
                objective_sum = logits.max(dim=1).values.sum()
            grads = torch.autograd.grad(objective_sum, activations)
        return layercam_maps(activations, grads, tuple(inputs.shape[-2:]))
