import math
from typing import Optional, Sequence, Tuple, Union

import torch
from mmpretrain.registry import BATCH_AUGMENTS
from torch import Tensor, nn

from gradmix_plugin.attribution import LayerCAM, parse_attribution_layers

FILLS = ('noise', 'partner', 'mean')
BOXES = ('argmax', 'threshold')


@BATCH_AUGMENTS.register_module()
class GradMix:
    r"""GradMix: mask what the model being trained already attends to.

    Proposed for open-set recognition in `arXiv:2505.12803
    <https://arxiv.org/abs/2505.12803>`_. A box centred on the arg-max of
    the LayerCAM map of every image is filled with noise (the reference), a
    partner image, or the image mean, so the model has to learn other
    features.

    Two modes:

    - :meth:`mask` is the reference masking, used directly by the two-view
      contrastive classifier on view 1 with maps from its own training
      forward.
    - :meth:`__call__` is the mmpretrain batch augment for any classifier
      (``data_preprocessor.batch_augments``). It computes the maps itself
      with :class:`~gradmix_plugin.attribution.LayerCAM`, which needs the
      model attached by ``dict(type='GradMixModelHook')`` in ``custom_hooks``.

    Args:
        attribution_layers (Sequence[str | dict]): Names of the modules
            whose outputs are attributed: feature maps ``(B, C, h, w)``,
            token sequences ``(B, N, C)`` or channels-last maps
            ``(B, h, w, C)``, detected as described in
            :class:`~gradmix_plugin.attribution.LayerCAM`; an entry
            ``dict(name=..., layout='nchw' | 'nlc' | 'nhwc', grid=(h, w),
            extra_tokens=k)`` overrides the detection. Defaults to
            ``('backbone.layer3', 'backbone.layer4')`` (ResNet on 32x32
            data; use stages 2, 3, 4 for TinyImageNet; the defaults of the
            other backbones are in ``docs/gradmix.md``).
        alpha (float): The Beta(alpha, alpha) parameter of the ratio.
            Defaults to 1.0.
        lambda_min (float): The smallest ratio kept. Defaults to 0.5.
        lambda_range (float): ``lambda = lambda_min + lambda_range *
            Beta(alpha, alpha)``. Defaults to 0.4.
        fill (str): ``'noise'`` (reference: U[0, 1) noise, one plane per
            image broadcast to all channels), ``'partner'`` (the same box of
            a shuffled partner image, one-hot scores mixed by the pasted
            area as in CutMix) or ``'mean'`` (the image's per-channel mean).
            Defaults to ``'noise'``.
        box (str): ``'argmax'`` (reference: square box around the arg-max
            pixel) or ``'threshold'`` (every pixel whose per-image min-max
            normalised map is ``>= threshold``). Defaults to ``'argmax'``.
        threshold (float): Threshold in (0, 1] for ``box='threshold'``.
            Defaults to 0.5.
        prob (float): Probability to augment a batch (one draw per batch;
            no draw when 1). Defaults to 1.0.
        objective (str): The LayerCAM objective of :meth:`__call__`:
            ``'label'`` (logit of the ground-truth class, ``argmax`` of the
            batch scores) or ``'pred'`` (largest logit). Defaults to
            ``'label'``.
        num_classes (int, optional): If given, :meth:`__call__` checks that
            the batch scores have this many columns. Defaults to None.

    Note:
        One ratio per batch: :math:`\lambda = \lambda_{min} +
        \lambda_{range} \cdot Beta(\alpha, \alpha)`. The box has sides
        :math:`s_h = \lfloor H \sqrt{1 - \lambda} \rfloor` and
        :math:`s_w = \lfloor W \sqrt{1 - \lambda} \rfloor` (:math:`s_h =
        s_w = s` for square images) and covers rows
        :math:`[c_y - \lfloor s_h/2 \rfloor, c_y + \lfloor s_h/2 \rfloor)`
        and columns :math:`[c_x - \lfloor s_w/2 \rfloor, c_x + \lfloor
        s_w/2 \rfloor)`, clipped to the image, where :math:`(c_y, c_x)` is
        the arg-max pixel of the image's map (``torch.argmax`` of the
        row-major flattened map: on ties, e.g. an all-zero map, the first
        pixel, so a constant map gives a box at the top-left corner). The
        returned weight is :math:`\lambda_{eff} = 1 - s_h s_w / (H W)`,
        from the unclipped sides. With ``box='threshold'`` no ratio is
        drawn and :math:`\lambda_{eff}` is 1 minus the masked fraction of
        the batch's pixels.

        Random draws use torch's global generators: the ratio and the
        partner permutation come from the CPU generator, the noise from the
        generator of the inputs' device, so a checkpoint of the global RNG
        state makes resuming exact.
    """

    def __init__(self,
                 attribution_layers: Sequence[Union[str, dict]] = (
                     'backbone.layer3', 'backbone.layer4'),
                 alpha: float = 1.0,
                 lambda_min: float = 0.5,
                 lambda_range: float = 0.4,
                 fill: str = 'noise',
                 box: str = 'argmax',
                 threshold: float = 0.5,
                 prob: float = 1.0,
                 objective: str = 'label',
                 num_classes: Optional[int] = None):
        if isinstance(attribution_layers, (str, dict)):
            attribution_layers = (attribution_layers, )
        parse_attribution_layers(attribution_layers)  # fail at build time
        if alpha <= 0:
            raise ValueError(f'alpha must be positive, got {alpha}')
        if not (0 <= lambda_min and 0 <= lambda_range
                and lambda_min + lambda_range <= 1):
            raise ValueError(
                'need 0 <= lambda_min, 0 <= lambda_range and lambda_min + '
                f'lambda_range <= 1, got lambda_min={lambda_min}, '
                f'lambda_range={lambda_range}')
        if fill not in FILLS:
            raise ValueError(f'unknown GradMix fill {fill!r}; choose one of '
                             f'{FILLS}')
        if box not in BOXES:
            raise ValueError(f'unknown GradMix box {box!r}; choose one of '
                             f'{BOXES}')
        if not 0 < threshold <= 1:
            raise ValueError(f'threshold must be in (0, 1], got {threshold}')
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        if objective not in ('label', 'pred'):
            raise ValueError(f'unknown GradMix objective {objective!r}; '
                             "choose 'label' or 'pred'")
        self.attribution_layers = tuple(attribution_layers)
        self.alpha = float(alpha)
        self.lambda_min = float(lambda_min)
        self.lambda_range = float(lambda_range)
        self.fill = fill
        self.box = box
        self.threshold = float(threshold)
        self.prob = float(prob)
        self.objective = objective
        self.num_classes = num_classes
        self._layercam: Optional[LayerCAM] = None

    # ------------------------------------------------------------------
    # model attachment (CE mode)
    # ------------------------------------------------------------------
    def attach_model(self, model: nn.Module) -> None:
        """Use ``model`` (unwrapped) for the attribution maps of
        :meth:`__call__`.

        The layers are checked now (their names, and their outputs with
        one forward of a dummy image, see
        :class:`~gradmix_plugin.attribution.LayerCAM`), so a wrong layer
        fails before training. The model is kept by the :class:`LayerCAM`
        built here, a plain attribute: it is not a submodule, and pickling
        or deep-copying a GradMix drops it (the copy must be attached
        again), so it never ends up in checkpoints.

        Args:
            model (nn.Module): The model being trained, not a DDP wrapper.
        """
        self._layercam = LayerCAM(model, self.attribution_layers)

    @property
    def attached_model(self) -> Optional[nn.Module]:
        """nn.Module or None: The model attached by :meth:`attach_model`."""
        return None if self._layercam is None else self._layercam.model

    @property
    def attribution_layouts(self) -> Optional[dict]:
        """dict or None: Every attributed layer's name and resolved layout
        (e.g. ``'nlc, 1 extra token(s), grid (8, 8)'``) once a model is
        attached."""
        if self._layercam is None:
            return None
        return dict(zip(self._layercam.target_layers,
                        self._layercam.layouts))

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state['_layercam'] = None
        return state

    # ------------------------------------------------------------------
    # random draws
    # ------------------------------------------------------------------
    def sample_apply(self) -> bool:
        """Draw whether to augment this batch.

        Returns:
            bool: True with probability ``prob`` (no draw when ``prob`` is 1
            or 0).
        """
        if self.prob >= 1:
            return True
        if self.prob <= 0:
            return False
        return bool(torch.rand(()) < self.prob)

    def sample_lambda(self) -> float:
        """Draw the ratio of the batch from the global CPU generator.

        Returns:
            float: ``lambda_min + lambda_range * Beta(alpha, alpha)``.
        """
        concentration = torch.tensor(self.alpha, dtype=torch.float64)
        beta = torch.distributions.Beta(concentration, concentration)
        return self.lambda_min + self.lambda_range * beta.sample().item()

    # ------------------------------------------------------------------
    # masking
    # ------------------------------------------------------------------
    def _argmax_region(self, maps: Tensor,
                       lam: float) -> Tuple[Tensor, float, Tensor]:
        height, width = maps.shape[-2:]
        ratio = math.sqrt(1.0 - lam)
        side_h, side_w = math.floor(height * ratio), math.floor(width * ratio)
        peak = maps.flatten(1).argmax(dim=1)
        centre_y, centre_x = peak // width, peak % width
        y1 = (centre_y - side_h // 2).clamp(0, height)
        y2 = (centre_y + side_h // 2).clamp(0, height)
        x1 = (centre_x - side_w // 2).clamp(0, width)
        x2 = (centre_x + side_w // 2).clamp(0, width)
        rows = torch.arange(height, device=maps.device).view(1, height, 1)
        cols = torch.arange(width, device=maps.device).view(1, 1, width)
        region = ((rows >= y1.view(-1, 1, 1)) & (rows < y2.view(-1, 1, 1))
                  & (cols >= x1.view(-1, 1, 1)) & (cols < x2.view(-1, 1, 1)))
        boxes = torch.stack([y1, x1, y2, x2], dim=1)
        lambda_eff = 1.0 - side_h * side_w / (height * width)
        return region, lambda_eff, boxes

    def _threshold_region(self, maps: Tensor) -> Tuple[Tensor, float, Tensor]:
        height, width = maps.shape[-2:]
        flat = maps.flatten(1)
        low = flat.min(dim=1, keepdim=True).values
        high = flat.max(dim=1, keepdim=True).values
        normalised = (flat - low) / (high - low + 1e-8)
        region = (normalised >= self.threshold).view_as(maps)
        lambda_eff = 1.0 - region.float().mean().item()
        # Bounding boxes of the masked pixels, (0, 0, 0, 0) when empty.
        any_row, any_col = region.any(dim=2), region.any(dim=1)
        rows = torch.arange(height, device=maps.device)
        cols = torch.arange(width, device=maps.device)
        nonempty = any_row.any(dim=1)
        y1 = torch.where(any_row, rows, height).min(dim=1).values
        y2 = torch.where(any_row, rows + 1, 0).max(dim=1).values
        x1 = torch.where(any_col, cols, width).min(dim=1).values
        x2 = torch.where(any_col, cols + 1, 0).max(dim=1).values
        boxes = torch.stack([y1, x1, y2, x2], dim=1) * nonempty.view(-1, 1)
        return region, lambda_eff, boxes

    def _mask(self, inputs: Tensor, maps: Tensor
              ) -> Tuple[Tensor, float, Tensor, Tensor, Optional[Tensor]]:
        if inputs.dim() != 4 or maps.dim() != 3 or \
                inputs.shape[0] != maps.shape[0] or \
                inputs.shape[-2:] != maps.shape[-2:]:
            raise ValueError(
                'GradMix.mask needs inputs (B, C, H, W) and maps (B, H, W) '
                f'of the same B, H, W; got inputs {tuple(inputs.shape)} and '
                f'maps {tuple(maps.shape)}')
        maps = maps.to(inputs.device)
        if self.box == 'argmax':
            region, lambda_eff, boxes = self._argmax_region(
                maps, self.sample_lambda())
        else:
            region, lambda_eff, boxes = self._threshold_region(maps)
        region = region.unsqueeze(1)  # broadcast over channels
        partner_index = None
        if self.fill == 'noise':
            batch_size, _, height, width = inputs.shape
            filler = torch.rand(
                batch_size, 1, height, width, device=inputs.device,
                dtype=inputs.dtype)
        elif self.fill == 'mean':
            filler = inputs.mean(dim=(2, 3), keepdim=True)
        else:
            partner_index = torch.randperm(inputs.shape[0]).to(inputs.device)
            filler = inputs[partner_index]
        masked_inputs = torch.where(region, filler, inputs)
        return masked_inputs, lambda_eff, boxes, region, partner_index

    def mask(self, inputs: Tensor,
             maps: Tensor) -> Tuple[Tensor, float, Tensor]:
        """Mask every image around the peak of its attribution map.

        This is the reference masking (see the class note for the maths);
        ``prob`` is not applied here (see :meth:`sample_apply`). The inputs
        are not modified in place.

        Args:
            inputs (Tensor): Normalised images ``(B, C, H, W)``, e.g. view 1.
            maps (Tensor): Their attribution maps ``(B, H, W)``.

        Returns:
            Tuple[Tensor, float, Tensor]: The masked images, ``lambda_eff``
            and the boxes ``(B, 4)`` as ``(y1, x1, y2, x2)`` (clipped,
            end-exclusive; LongTensor).
        """
        masked_inputs, lambda_eff, boxes, _, _ = self._mask(inputs, maps)
        return masked_inputs, lambda_eff, boxes

    # ------------------------------------------------------------------
    # CE mode
    # ------------------------------------------------------------------
    def __call__(self, batch_inputs: Tensor,
                 batch_score: Tensor) -> Tuple[Tensor, Tensor]:
        """Augment a batch inside a data preprocessor.

        Args:
            batch_inputs (Tensor): Normalised images ``(B, C, H, W)``.
            batch_score (Tensor): One-hot (or soft) scores
                ``(B, num_classes)``.

        Returns:
            Tuple[Tensor, Tensor]: The augmented images and float scores.
            Scores are only mixed with ``fill='partner'``: by the masked
            area of each image, ``(1 - a_i) y_i + a_i y_{partner(i)}``.
        """
        if batch_score.dim() != 2:
            raise ValueError(
                'GradMix needs one-hot batch scores (B, num_classes), got '
                f'shape {tuple(batch_score.shape)}')
        if self.num_classes is not None and \
                batch_score.shape[1] != self.num_classes:
            raise ValueError(
                f'GradMix(num_classes={self.num_classes}) got scores with '
                f'{batch_score.shape[1]} classes')
        if self._layercam is None:
            raise RuntimeError(
                'GradMix needs the model being trained for its attribution '
                "maps: add dict(type='GradMixModelHook') to `custom_hooks` in "
                'the config (or call GradMix.attach_model(model)).')
        batch_score = batch_score.float()
        if not self.sample_apply():
            return batch_inputs, batch_score
        targets = batch_score.argmax(dim=1) \
            if self.objective == 'label' else None
        maps = self._layercam(batch_inputs, self.objective, targets)
        masked_inputs, _, _, region, partner_index = self._mask(
            batch_inputs, maps)
        if partner_index is not None:
            area = region.flatten(1).float().mean(dim=1, keepdim=True)
            batch_score = (1 - area) * batch_score + \
                area * batch_score[partner_index]
        return masked_inputs, batch_score
