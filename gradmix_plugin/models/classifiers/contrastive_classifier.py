"""Two-view contrastive classifier (SupCon + SimCLR) with GradMix."""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmpretrain.models import BaseClassifier
from mmpretrain.registry import BATCH_AUGMENTS, MODELS
from mmpretrain.structures import DataSample
from torch import Tensor, nn

from gradmix_plugin.attribution import LayerCAM, layercam_maps

DEFAULT_PROJECTOR = dict(
    type='ProjectionNeck', in_channels=512, hid_channels=512, out_channels=128)
DEFAULT_LOSS = dict(type='SupConLoss', temperature=0.05,
                    base_temperature=0.07)
DEFAULT_ATTRIBUTION_LOSS = dict(
    type='SupConLoss',
    temperature=0.05,
    base_temperature=0.07,
    gather_distributed=False)


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

    BatchNorm statistics therefore move once per forward of the method (the
    original and the masked batch), exactly as in the reference.

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
            with self.layercam.capture() as activations:
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
        if apply_gradmix:
            attribution = self.attribution_loss(embeds)
            grads = torch.autograd.grad(
                attribution, activations, retain_graph=True)
            maps = layercam_maps(activations, grads, inputs[0].shape[-2:])
            masked_view, lambda_eff, _ = self.gradmix.mask(
                inputs[0], maps[:batch_size])
            _, masked_embeds = self._feats_and_embeds(
                torch.cat([masked_view, *inputs[1:]]))
            losses['loss_simclr_mix'] = (
                self.lambda_ssl * lambda_eff * self.contrastive_loss(
                    embeds,
                    features_positive=self._split_views(
                        masked_embeds, num_views)))
            losses['lambda_eff'] = embeds.new_tensor(lambda_eff)
        if self.with_head:
            losses['loss_cls'] = self.head.loss(
                (feats.detach(), ), list(data_samples) * num_views)['loss']
        return losses

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
