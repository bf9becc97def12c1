"""Two-view contrastive classifier (SupCon + SimCLR) with GradMix."""
import logging
from contextlib import nullcontext
from typing import (
    ContextManager,
    Dict,
    List,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import torch
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
from mmpretrain.models import BaseClassifier
from mmpretrain.registry import BATCH_AUGMENTS, MODELS
from mmpretrain.structures import DataSample
from torch import Tensor, nn
from torch.utils.checkpoint import get_device_states, set_device_states

from gradmix_plugin.attribution import LayerCAM, layercam_maps
from gradmix_plugin.models.utils import (
    frozen_running_stats,
    repeat_running_stats_update,
)

DEFAULT_PROJECTOR = dict(
    type='ProjectionNeck', in_channels=512, hid_channels=512, out_channels=128)
DEFAULT_LOSS = dict(type='SupConLoss', temperature=0.05,
                    base_temperature=0.07)
DEFAULT_ATTRIBUTION_LOSS = dict(
    type='SupConLoss',
    temperature=0.05,
    base_temperature=0.07,
    gather_distributed=False)
BN_STATS = ('reference', 'single')
MEMORY_MODES = ('default', 'lean')


class _MaskedForward(NamedTuple):
    """What the memory-lean step needs to replay the masked forward."""
    inputs: Tensor  # the masked batch [x1~; x2]
    embeds: Tensor  # its embeddings, a leaf collecting dLoss/dZ~
    cpu_rng_state: Tensor
    device_rng_states: Tuple[List[int], List[Tensor]]


@MODELS.register_module()
class ContrastiveClassifier(BaseClassifier):
    r"""Two-view contrastive classifier, with GradMix as in its reference.

    The network is ``backbone -> neck -> projector``: the neck output (e.g.
    the 512-d globally pooled ResNet features) are the ``feats`` and the
    L2-normalised projector output (128-d) the ``embeds`` used for
    open-set recognition (see
    :class:`~gradmix_plugin.evaluation.OSRMetric`). Each training image
    comes as ``V >= 2`` augmented views (mmpretrain's ``MultiView``), all
    forwarded as one batch :math:`[x_1; x_2]` giving embeddings :math:`Z`.

    The training loss (`GradMix <https://arxiv.org/abs/2505.12803>`_) is

    .. math::
        \gamma\,\mathrm{SupCon}(Z; y) + \lambda_{ssl}\,[\mathrm{SimCLR}(Z)
        + \lambda_{eff}\,\mathrm{SimCLR_{mix}}(Z, \tilde Z)]

    with all three terms computed by ``loss`` (a
    :class:`~gradmix_plugin.models.losses.SupConLoss`); ``gamma=0`` is the
    self-supervised recipe. With ``gradmix`` set, every step:

    1. the training forward of :math:`[x_1; x_2]` records the outputs of
       ``gradmix.attribution_layers`` (:class:`LayerCAM.capture`);
    2. the attribution objective (``attribution_loss``, SimCLR on
       :math:`Z`) is differentiated with ``torch.autograd.grad`` with
       respect to these activations only, keeping the graph, so no
       parameter receives an attribution gradient and no extra forward is
       run (the reference's separate attribution forward in train mode
       gives the same maps);
    3. :func:`layercam_maps` over all ``V * B`` images (normalised over
       that whole batch) gives the maps, and ``gradmix.mask`` masks view 1
       around the peaks of its maps, returning :math:`\lambda_{eff}`;
    4. the masked batch :math:`[\tilde x_1; x_2]` is forwarded to
       :math:`\tilde Z` for the ``SimCLR_mix`` term (positive logits from
       :math:`\tilde Z`, denominator from :math:`Z`).

    BatchNorm running statistics (``bn_stats``): the reference forwards the
    clean batch twice per GradMix step (its attribution forward and its
    training forward, both in train mode), then the masked batch, so every
    BatchNorm layer updates its running statistics three times per step
    (``num_batches_tracked`` + 3), the clean batch statistics twice in a row.

    - ``'reference'`` (default): the same three updates without the third
      forward. During the clean training forward every BatchNorm layer in
      train mode repeats its running-statistics update with the same input
      (:func:`~gradmix_plugin.models.utils.repeat_running_stats_update`),
      then the masked forward updates once: the buffers equal those of the
      reference order (momentum or ``momentum=None``; ``SyncBatchNorm``
      with the statistics gathered over the ranks, as its second forward
      would have). A step without masking (``gradmix.prob < 1``) runs only
      the clean forward and updates once, as the reference's training
      without the GradMix branch.
    - ``'single'``: each forward updates once (clean batch, then masked
      batch: ``num_batches_tracked`` + 2 per GradMix step). The long-run
      weight of the clean against the masked batch statistics is then about
      0.47/0.53 at momentum 0.1, against 0.63/0.37 in the reference, which
      changes eval-mode features.

    Parameter gradients are the same for both options.

    Memory (``memory``): the default step holds the graphs of both forwards
    until the single backward (about twice the activation memory of a step
    without GradMix). ``'lean'`` (in :meth:`train_step`) forwards the
    masked batch first without a graph to get :math:`\tilde Z`,
    back-propagates the whole loss through the clean graph (freeing it),
    the gradient of the loss with respect to :math:`\tilde Z` being
    collected on a detached copy, then recomputes the masked forward with a
    graph (same random state, BatchNorm buffers restored, so they move as
    in the default step) and back-propagates that gradient. The parameter
    gradients equal the default step's at the cost of one more forward
    without a graph; loss scaling (``AmpOptimWrapper``), autocast and
    gradient accumulation of the ``OptimWrapper`` are kept. Calling
    :meth:`loss` directly, or through a wrapper that does so instead of
    calling this model's :meth:`train_step` (mmengine's
    ``MMDistributedDataParallel``), runs the default step (with a warning).

    An optional linear classifier (``head``, e.g. ``OSRLinearClsHead``)
    is trained with its own loss on the **detached** features of all views,
    so it never changes the representation; it only adds logits (and
    logit-based OSR scores such as MSP) at test time.

    Args:
        backbone (dict): The backbone, e.g. ``ResNet_CIFAR``.
        neck (dict, optional): Pools the backbone output to ``feats``, e.g.
            ``GlobalAveragePooling``. Defaults to None.
        projector (dict): The projection head giving L2-normalised
            ``embeds``. Defaults to ``ProjectionNeck`` 512-512-128.
        head (dict, optional): Linear classifier on the detached ``feats``.
            Defaults to None.
        gamma (float): Weight of the supervised SupCon term (0: no labels
            used). Defaults to 1.0.
        lambda_ssl (float): Weight of the self-supervised terms SimCLR and
            ``lambda_eff * SimCLR_mix``. Defaults to 1.0.
        loss (dict): Config of the ``SupConLoss`` used for all training
            terms. Defaults to temperature 0.05, base temperature 0.07.
        attribution_loss (dict): Config of the ``SupConLoss`` whose SimCLR
            value is attributed (GradMix only). Defaults to temperature
            0.05, base temperature 0.07, no gathering across ranks (the maps
            of a rank only depend on its own batch).
        gradmix (dict, optional): Config of a
            :class:`~gradmix_plugin.models.batch_augments.GradMix` (its
            ``attribution_layers``, box and fill); None trains without
            GradMix. Its ``prob`` is drawn once per step; a step without
            masking has no ``SimCLR_mix`` term. Defaults to None.
        bn_stats (str): BatchNorm running statistics of a GradMix step:
            ``'reference'`` (three updates, as the reference's three
            forwards) or ``'single'`` (one per forward of this model).
            Defaults to ``'reference'``.
        memory (str): ``'default'`` (both graphs held until one backward,
            fastest) or ``'lean'`` (one graph at a time, one more forward
            without graph; in :meth:`train_step`). Defaults to
            ``'default'``.
        pretrained (str, optional): Checkpoint to initialise from.
            Defaults to None.
        data_preprocessor (dict, optional): Defaults to
            ``OSRDataPreprocessor``, which handles the list of views.
        init_cfg (dict, optional): Initialization config. Defaults to None.
    """

    def __init__(self,
                 backbone: dict,
                 neck: Optional[dict] = None,
                 projector: dict = DEFAULT_PROJECTOR,
                 head: Optional[dict] = None,
                 gamma: float = 1.0,
                 lambda_ssl: float = 1.0,
                 loss: dict = DEFAULT_LOSS,
                 attribution_loss: dict = DEFAULT_ATTRIBUTION_LOSS,
                 gradmix: Optional[dict] = None,
                 bn_stats: str = 'reference',
                 memory: str = 'default',
                 pretrained: Optional[str] = None,
                 data_preprocessor: Optional[Union[dict, nn.Module]] = None,
                 init_cfg: Optional[dict] = None) -> None:
        if pretrained is not None:
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        data_preprocessor = data_preprocessor or {}
        if isinstance(data_preprocessor, dict):
            data_preprocessor = dict(data_preprocessor)
            data_preprocessor.setdefault('type', 'OSRDataPreprocessor')
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            init_cfg=init_cfg, data_preprocessor=data_preprocessor)
        if gamma < 0 or lambda_ssl < 0 or gamma + lambda_ssl == 0:
            raise ValueError(
                'gamma and lambda_ssl must be >= 0 and not both 0, got '
                f'gamma={gamma}, lambda_ssl={lambda_ssl}')
        if gradmix is not None and lambda_ssl == 0:
            raise ValueError('GradMix adds a self-supervised term: it needs '
                             f'lambda_ssl > 0, got lambda_ssl={lambda_ssl}')
        if bn_stats not in BN_STATS:
            raise ValueError(f'unknown bn_stats {bn_stats!r}; choose one '
                             f'of {BN_STATS}')
        if memory not in MEMORY_MODES:
            raise ValueError(f'unknown memory {memory!r}; choose one of '
                             f'{MEMORY_MODES}')
        self.bn_stats = bn_stats
        self.memory = memory
        self._warned_lean = False
        self.backbone = MODELS.build(backbone)
        self.neck = None if neck is None else MODELS.build(neck)
        self.projector = MODELS.build(projector)
        self.head = None if head is None else MODELS.build(head)
        self.gamma = gamma
        self.lambda_ssl = lambda_ssl
        self.contrastive_loss = MODELS.build(loss)
        self.gradmix = None
        self.layercam = None
        if gradmix is not None:
            self.attribution_loss = MODELS.build(attribution_loss)
            self.gradmix = BATCH_AUGMENTS.build(gradmix)
            self.layercam = LayerCAM(self, self.gradmix.attribution_layers)

    def forward(self,
                inputs: Union[Tensor, Sequence[Tensor]],
                data_samples: Optional[List[DataSample]] = None,
                mode: str = 'tensor'):
        """The unified entry of mmengine models.

        Args:
            inputs (Tensor | Sequence[Tensor]): ``(B, C, H, W)`` images; in
                ``'loss'`` mode a list of views, each ``(B, C, H, W)``.
            data_samples (List[DataSample], optional): The annotations
                (``gt_label`` needed in ``'loss'`` mode when ``gamma > 0``
                or with a head). Defaults to None.
            mode (str): ``'tensor'`` (the L2-normalised embeddings),
                ``'loss'`` or ``'predict'``. Defaults to ``'tensor'``.
        """
        if mode == 'tensor':
            return self.extract_feat(inputs, stage='projector')
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        raise RuntimeError(f'Invalid mode "{mode}".')

    def extract_feat(self,
                     inputs: Tensor,
                     stage: str = 'neck') -> Union[Tuple[Tensor], Tensor]:
        """Extract features of a ``(B, C, H, W)`` batch.

        Args:
            inputs (Tensor): The images.
            stage (str): ``'backbone'`` (tuple of backbone outputs),
                ``'neck'`` (the ``(B, C)`` pooled ``feats``) or
                ``'projector'`` (the ``(B, D)`` normalised ``embeds``).
                Defaults to ``'neck'``.

        Returns:
            tuple | Tensor: The backbone tuple, or a tensor.
        """
        if stage not in ('backbone', 'neck', 'projector'):
            raise ValueError(f'Invalid output stage {stage!r}; choose '
                             "'backbone', 'neck' or 'projector'")
        x = self.backbone(inputs)
        if stage == 'backbone':
            return x
        feats = self.neck(x) if self.with_neck else x
        if stage == 'neck':
            return feats[-1]
        return self.projector(feats)[-1]

    def _feats_and_embeds(self, inputs: Tensor) -> Tuple[Tensor, Tensor]:
        """The pooled features and the normalised embeddings."""
        x = self.backbone(inputs)
        feats = self.neck(x) if self.with_neck else x
        return feats[-1], self.projector(feats)[-1]

    @staticmethod
    def _split_views(embeds: Tensor, num_views: int) -> Tensor:
        """``(V * B, D)`` view-major -> ``(B, V, D)``."""
        return embeds.view(num_views, -1, embeds.shape[-1]).transpose(0, 1)

    def loss(self, inputs: Sequence[Tensor],
             data_samples: List[DataSample]) -> Dict[str, Tensor]:
        """Compute the training losses of a multi-view batch.

        This is the default step for both ``memory`` modes (the lean one
        only acts in :meth:`train_step`).

        Args:
            inputs (Sequence[Tensor]): ``V >= 2`` views of the same
                ``B`` images, each ``(B, C, H, W)``.
            data_samples (List[DataSample]): One per image, with
                ``gt_label`` when ``gamma > 0`` or a head exists.

        Returns:
            dict[str, Tensor]: ``loss_supcon`` (if ``gamma > 0``),
            ``loss_simclr`` and ``loss_simclr_mix`` (if ``lambda_ssl > 0``;
            the mix term only with GradMix), ``loss_cls`` (with a head), all
            already weighted, and ``lambda_eff`` (logged, not a loss).
        """
        if self.memory == 'lean' and self.training and not self._warned_lean:
            print_log(
                "memory='lean' acts in ContrastiveClassifier.train_step; "
                'loss() called directly (e.g. by a distributed wrapper) '
                'runs the default step, holding both graphs',
                logger='current', level=logging.WARNING)
            self._warned_lean = True
        return self._loss(inputs, data_samples, lean=False)[0]

    def _loss(self, inputs: Sequence[Tensor], data_samples: List[DataSample],
              lean: bool) -> Tuple[Dict[str, Tensor],
                                   Optional[_MaskedForward]]:
        """The losses of :meth:`loss`; with ``lean`` the masked batch is
        forwarded without a graph and returned for :meth:`train_step` to
        replay (None when GradMix was not applied)."""
        if isinstance(inputs, Tensor) or len(inputs) < 2:
            shape = tuple(inputs.shape) if isinstance(inputs, Tensor) \
                else f'{len(inputs)} view(s)'
            raise ValueError(
                'ContrastiveClassifier trains on a list of >= 2 views of '
                f'the batch (MultiView pipeline), got {shape}')
        num_views = len(inputs)
        batch_size = inputs[0].shape[0]
        apply_gradmix = self.gradmix is not None and \
            self.gradmix.sample_apply()

        if apply_gradmix:
            with self.layercam.capture() as activations, \
                    self._clean_bn_stats():
                feats, embeds = self._feats_and_embeds(torch.cat(inputs))
        else:
            feats, embeds = self._feats_and_embeds(torch.cat(inputs))
        embeds = self._split_views(embeds, num_views)

        losses = {}
        if self.gamma > 0:
            labels = torch.cat([sample.gt_label for sample in data_samples])
            losses['loss_supcon'] = self.gamma * self.contrastive_loss(
                embeds, labels)
        if self.lambda_ssl > 0:
            losses['loss_simclr'] = self.lambda_ssl * self.contrastive_loss(
                embeds)
        masked_forward = None
        if apply_gradmix:
            attribution = self.attribution_loss(embeds)
            grads = torch.autograd.grad(
                attribution, activations, retain_graph=True)
            maps = layercam_maps(activations, grads, inputs[0].shape[-2:])
            masked_view, lambda_eff, _ = self.gradmix.mask(
                inputs[0], maps[:batch_size])
            masked = torch.cat([masked_view, *inputs[1:]])
            if lean:
                rng_states = torch.get_rng_state(), get_device_states(masked)
                with torch.no_grad():
                    _, masked_embeds = self._feats_and_embeds(masked)
                masked_embeds.requires_grad_()
                masked_forward = _MaskedForward(masked, masked_embeds,
                                                *rng_states)
            else:
                _, masked_embeds = self._feats_and_embeds(masked)
            losses['loss_simclr_mix'] = (
                self.lambda_ssl * lambda_eff * self.contrastive_loss(
                    embeds,
                    features_positive=self._split_views(
                        masked_embeds, num_views)))
            losses['lambda_eff'] = embeds.new_tensor(lambda_eff)
        if self.with_head:
            losses['loss_cls'] = self.head.loss(
                (feats.detach(), ), list(data_samples) * num_views)['loss']
        return losses, masked_forward

    def _clean_bn_stats(self) -> ContextManager:
        """The BatchNorm rule of the clean forward of a GradMix step."""
        if self.bn_stats == 'reference':
            return repeat_running_stats_update(self)
        return nullcontext()

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: OptimWrapper) -> Dict[str, Tensor]:
        """One optimisation step; the memory-lean GradMix step if chosen.

        With ``memory='default'`` (or without GradMix) this is mmengine's
        ``BaseModel.train_step``. With ``memory='lean'`` the loss of
        :meth:`_loss` (masked batch forwarded without a graph) is
        back-propagated through the clean graph by
        ``optim_wrapper.backward`` (its loss scaling and accumulation
        factor included), which frees that graph; then the masked forward
        is replayed with a graph under ``optim_wrapper.optim_context``
        (autocast), with the random state of the first masked forward and
        the BatchNorm buffers restored afterwards, and the gradient
        collected on its embeddings is back-propagated. The optimizer steps
        (and zeroes the gradients) when ``optim_wrapper.should_update()``,
        as in ``OptimWrapper.update_params``.

        Args:
            data (dict | tuple | list): A batch from the dataloader.
            optim_wrapper (OptimWrapper): Updates the parameters.

        Returns:
            Dict[str, Tensor]: The logged losses.
        """
        if self.memory == 'default' or self.gradmix is None:
            return super().train_step(data, optim_wrapper)
        with optim_wrapper.optim_context(self):
            data = self.data_preprocessor(data, True)
            losses, masked = self._loss(
                data['inputs'], data['data_samples'], lean=True)
        parsed_losses, log_vars = self.parse_losses(losses)
        if masked is None:  # GradMix skipped this step: a single graph
            optim_wrapper.update_params(parsed_losses)
            return log_vars
        optim_wrapper.backward(optim_wrapper.scale_loss(parsed_losses))
        devices, states = masked.device_rng_states
        with optim_wrapper.optim_context(self), \
                torch.random.fork_rng(devices=devices), \
                frozen_running_stats(self):
            torch.set_rng_state(masked.cpu_rng_state)
            set_device_states(devices, states)
            _, embeds = self._feats_and_embeds(masked.inputs)
        torch.autograd.backward(embeds, masked.embeds.grad)
        if optim_wrapper.should_update():
            optim_wrapper.step()
            optim_wrapper.zero_grad()
        return log_vars

    def get_final_layer(self) -> Optional[Tuple[Tensor, Tensor]]:
        """Weight ``(C, D)`` and bias ``(C, )`` of the head's final linear
        layer (detached), whose input is the ``feats`` output; None without
        a linear head (scores that need logits or the layer then refuse
        this model by name)."""
        fc = getattr(self.head, 'fc', None) if self.with_head else None
        if isinstance(fc, torch.nn.Linear):
            return fc.weight.detach(), (None if fc.bias is None else
                                        fc.bias.detach())
        return None

    def predict(self,
                inputs: Tensor,
                data_samples: Optional[List[DataSample]] = None
                ) -> List[DataSample]:
        """Predict a single-view batch.

        Args:
            inputs (Tensor): ``(B, C, H, W)`` images (test pipeline).
            data_samples (List[DataSample], optional): The annotations.
                Defaults to None.

        Returns:
            List[DataSample]: One per image, with ``feats`` (pooled
            features), ``embeds`` (normalised embedding) and, with a head,
            ``logits``, ``pred_score`` and ``pred_label``.
        """
        if not isinstance(inputs, Tensor) or inputs.dim() != 4:
            raise ValueError(
                'ContrastiveClassifier.predict needs one (B, C, H, W) view, '
                f'got {type(inputs).__name__} '
                f'{getattr(inputs, "shape", len(inputs))}; use a '
                'single-view test pipeline')
        feats, embeds = self._feats_and_embeds(inputs)
        if self.with_head:
            data_samples = self.head.predict((feats, ), data_samples)
        elif data_samples is None:
            data_samples = [DataSample() for _ in range(inputs.shape[0])]
        logits = self.head((feats, )) if self.with_head and \
            'logits' not in data_samples[0] else None
        for index, sample in enumerate(data_samples):
            sample.set_field(feats[index], 'feats', dtype=Tensor)
            sample.set_field(embeds[index], 'embeds', dtype=Tensor)
            if logits is not None:
                sample.set_field(logits[index], 'logits', dtype=Tensor)
        return data_samples
