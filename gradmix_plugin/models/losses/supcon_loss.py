"""Supervised contrastive loss (SupCon), SimCLR and the GradMix mix term."""
from typing import Any, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.dist import all_gather, all_reduce, get_rank, get_world_size
from mmpretrain.registry import MODELS
from torch import Tensor, nn

CONTRAST_MODES = ('all', 'one')


class _AllGatherWithGradient(torch.autograd.Function):
    """All-gather that back-propagates the gradients of every rank.

    The backward sums, over all ranks, the gradients that flow into each
    gathered slice and returns the local slice, so the gradient of a local
    input is the gradient of the sum of all ranks' losses.
    """

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tuple[Tensor, ...]:
        return tuple(all_gather(tensor.contiguous()))

    @staticmethod
    def backward(ctx: Any, *grads: Tensor) -> Tensor:
        grad = torch.stack(grads)
        all_reduce(grad, op='sum')
        return grad[get_rank()]


@MODELS.register_module()
class SupConLoss(nn.Module):
    r"""Supervised contrastive loss, with SimCLR as its unsupervised case.

    Implementation of `Supervised Contrastive Learning
    <https://arxiv.org/abs/2004.11362>`_ (Khosla et al. 2020), following the
    formulation of the authors' reference code. With ``labels=None`` it is
    the NT-Xent loss of `SimCLR <https://arxiv.org/abs/2002.05709>`_.

    Note:
        The ``N`` samples with ``V`` views each give the contrast set of
        ``NV`` embeddings :math:`z_a`, L2-normalised here (with ``eps``), so
        un-normalised inputs are accepted. For an anchor :math:`i` (every
        embedding with ``contrast_mode='all'``, the first view of each
        sample with ``'one'``), :math:`P(i)` are the other embeddings of the
        same class (with ``labels=None``: the other views of the same
        sample) and :math:`A(i)` all embeddings but :math:`i` itself:

        .. math::
            \ell_i = -\frac{\tau}{\tau_{base}} \frac{1}{|P(i)|}
            \sum_{p \in P(i)} \log
            \frac{\exp(z_i \cdot \tilde z_p / \tau)}
                 {\sum_{a \in A(i)} \exp(z_i \cdot z_a / \tau)}

        where :math:`\tilde z = z` unless ``features_positive`` is given.
        The loss is the mean of :math:`\ell_i` over the anchors that have at
        least one positive; anchors without a positive are left out (no
        NaN, no gradient). The log-sum-exp subtracts the row maximum for
        numerical stability.

        ``features_positive`` gives the GradMix ``SimCLR_mix`` term: the
        positive logits are taken from another forward :math:`\tilde z`
        (the masked batch) while the denominator stays on the original
        batch. With two views and ``labels=None``, :math:`P(i)` is the single
        index :math:`p(i)`: the other view of the same image, so anchor
        :math:`i` (an original view-1 embedding) is pulled towards the
        masked batch's view-2 embedding of its image, and an original
        view-2 anchor towards the masked view-1 embedding. With
        ``features_positive == features`` the term equals SimCLR.

    Note:
        With ``gather_distributed=True`` inside an initialised process group
        of more than one rank, the features (with gradient), the positive
        features and the labels of all ranks are gathered: the anchors are
        the local samples and the contrast set is the global batch, so every
        rank sees the negatives of a single-process run with the whole
        batch. All ranks must pass the same number of samples. The local
        loss is the sum over the local anchors scaled by
        ``world_size / (global number of anchors with a positive)``: the
        mean of the ranks' losses equals the single-process loss, and the
        gradient reaching the local features is ``world_size`` times the
        single-process one, which DDP's gradient averaging divides out, so
        parameter gradients equal those of the single-process run.

    Args:
        temperature (float): Temperature :math:`\tau`. Defaults to 0.07.
        base_temperature (float): :math:`\tau_{base}` of the loss scale
            :math:`-\tau / \tau_{base}`. Defaults to 0.07.
        contrast_mode (str): ``'all'`` (every view is an anchor) or
            ``'one'`` (only the first view). Defaults to ``'all'``.
        gather_distributed (bool): Gather the batch across ranks under
            distributed training. Defaults to True.
        eps (float): ``eps`` of the L2 normalisation. Defaults to 1e-12.
    """

    def __init__(self,
                 temperature: float = 0.07,
                 base_temperature: float = 0.07,
                 contrast_mode: str = 'all',
                 gather_distributed: bool = True,
                 eps: float = 1e-12) -> None:
        super().__init__()
        if contrast_mode not in CONTRAST_MODES:
            raise ValueError(f'unknown contrast_mode {contrast_mode!r}; '
                             f'choose one of {CONTRAST_MODES}')
        if temperature <= 0 or base_temperature <= 0:
            raise ValueError(
                'temperature and base_temperature must be positive, got '
                f'{temperature} and {base_temperature}')
        self.temperature = temperature
        self.base_temperature = base_temperature
        self.contrast_mode = contrast_mode
        self.gather_distributed = gather_distributed
        self.eps = eps

    def _check_inputs(self, features: Tensor, labels: Optional[Tensor],
                      features_positive: Optional[Tensor]) -> None:
        if features.dim() != 3:
            raise ValueError('SupConLoss needs features of shape '
                             '(N, num_views, D), got '
                             f'{tuple(features.shape)}')
        if labels is not None and labels.shape != features.shape[:1]:
            raise ValueError(
                f'labels of shape {tuple(labels.shape)} do not match the '
                f'{features.shape[0]} samples of the features')
        if (features_positive is not None
                and features_positive.shape != features.shape):
            raise ValueError(
                'features_positive must have the shape of features '
                f'{tuple(features.shape)}, got '
                f'{tuple(features_positive.shape)}')

    def forward(self,
                features: Tensor,
                labels: Optional[Tensor] = None,
                features_positive: Optional[Tensor] = None) -> Tensor:
        """Compute the loss.

        Args:
            features (Tensor): Embeddings of shape ``(N, num_views, D)``.
            labels (Tensor, optional): Class indices of shape ``(N,)``; None
                gives SimCLR (each sample is its own class). Defaults to
                None.
            features_positive (Tensor, optional): Embeddings of shape
                ``(N, num_views, D)`` giving the positive logits (GradMix
                ``SimCLR_mix``); None uses ``features``. Defaults to None.

        Returns:
            Tensor: The scalar loss.
        """
        self._check_inputs(features, labels, features_positive)
        num_samples, num_views, _ = features.shape
        features = F.normalize(features, dim=-1, eps=self.eps)
        if features_positive is not None:
            features_positive = F.normalize(
                features_positive, dim=-1, eps=self.eps)
        if labels is not None:
            labels = labels.to(features.device)

        world_size = get_world_size() if self.gather_distributed else 1
        local_features = features
        offset = 0
        if world_size > 1:
            offset = get_rank() * num_samples
            features = torch.cat(_AllGatherWithGradient.apply(features))
            if features_positive is not None:
                features_positive = torch.cat(
                    _AllGatherWithGradient.apply(features_positive))
            if labels is not None:
                labels = torch.cat(all_gather(labels))

        # View-major contrast set: row v * N_all + n is view v of sample n.
        total = features.shape[0]
        if labels is None:  # SimCLR: every sample is its own class
            labels = torch.arange(total, device=features.device)
        contrast = features.transpose(0, 1).reshape(num_views * total, -1)
        positive = contrast if features_positive is None else \
            features_positive.transpose(0, 1).reshape(num_views * total, -1)
        contrast_labels = labels.repeat(num_views)

        anchor_views = num_views if self.contrast_mode == 'all' else 1
        anchors = local_features[:, :anchor_views].transpose(0, 1).reshape(
            anchor_views * num_samples, -1)
        local_index = torch.arange(num_samples, device=features.device)
        anchor_rows = torch.cat([
            view * total + offset + local_index
            for view in range(anchor_views)
        ])
        anchor_labels = contrast_labels[anchor_rows]

        self_mask = torch.zeros(
            anchors.shape[0], contrast.shape[0], dtype=torch.bool,
            device=features.device)
        self_mask[torch.arange(anchors.shape[0]), anchor_rows] = True
        positive_mask = (anchor_labels[:, None]
                         == contrast_labels[None, :]) & ~self_mask

        logits = anchors @ contrast.T / self.temperature
        log_denominator = torch.logsumexp(
            logits.masked_fill(self_mask, float('-inf')), dim=1)
        positive_logits = logits if features_positive is None else \
            anchors @ positive.T / self.temperature
        log_prob = positive_logits - log_denominator[:, None]
        num_positives = positive_mask.sum(1)
        mean_log_prob_pos = torch.where(
            positive_mask, log_prob, torch.zeros_like(log_prob)).sum(1) / \
            num_positives.clamp(min=1)
        anchor_losses = -(self.temperature /
                          self.base_temperature) * mean_log_prob_pos

        has_positive = num_positives > 0
        num_valid = has_positive.sum().to(anchor_losses.dtype)
        if world_size > 1:
            all_reduce(num_valid, op='sum')
        loss_sum = torch.where(has_positive, anchor_losses,
                               torch.zeros_like(anchor_losses)).sum()
        return loss_sum * world_size / num_valid.clamp(min=1)
