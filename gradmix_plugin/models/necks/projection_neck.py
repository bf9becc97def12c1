"""MLP projection head of contrastive learning."""
from typing import List, Optional, Tuple, Union

import torch.nn.functional as F
from mmengine.model import BaseModule
from mmpretrain.registry import MODELS
from torch import Tensor, nn


@MODELS.register_module()
class ProjectionNeck(BaseModule):
    """Linear-ReLU-Linear projection head, L2-normalised output.

    The projection head of `SupContrast <https://arxiv.org/abs/2004.11362>`_
    and of the GradMix reference: no normalisation layer between the two
    linear layers (unlike mmpretrain's ``NonLinearNeck``, which always puts a
    BatchNorm after the first one), biases in both.

    Args:
        in_channels (int): Input feature size. Defaults to 512.
        hid_channels (int): Hidden size. Defaults to 512.
        out_channels (int): Embedding size. Defaults to 128.
        normalize (bool): L2-normalise the output along the last dimension.
            Defaults to True.
        init_cfg (dict or list[dict], optional): Initialization config.
            Defaults to None (PyTorch's default initialisation).
    """

    def __init__(self,
                 in_channels: int = 512,
                 hid_channels: int = 512,
                 out_channels: int = 128,
                 normalize: bool = True,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.mlp = nn.Sequential(
            nn.Linear(in_channels, hid_channels), nn.ReLU(inplace=True),
            nn.Linear(hid_channels, out_channels))
        self.normalize = normalize

    def forward(self, inputs: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
        """Project every ``(N, in_channels)`` tensor of ``inputs``.

        Args:
            inputs (tuple[Tensor]): Pooled features, e.g. the output of
                ``GlobalAveragePooling``.

        Returns:
            tuple[Tensor]: The ``(N, out_channels)`` embeddings.
        """
        if not isinstance(inputs, tuple):
            raise TypeError('ProjectionNeck expects a tuple of (N, C) '
                            f'tensors, got {type(inputs).__name__}')
        outs = tuple(self.mlp(x) for x in inputs)
        if self.normalize:
            outs = tuple(F.normalize(out, dim=-1) for out in outs)
        return outs
