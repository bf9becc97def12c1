"""Several necks applied in order, optionally frozen."""
from contextlib import nullcontext
from typing import List, Optional, Tuple, Union

import torch
from mmengine.model import BaseModule, ModuleList
from mmpretrain.registry import MODELS
from torch import Tensor


@MODELS.register_module()
class SequentialNeck(BaseModule):
    """Apply ``necks`` one after the other (``necks.0`` first).

    With it an ``ImageClassifier`` can put a linear probe on the output of
    a contrastive model's projection head: ``GlobalAveragePooling`` then
    ``ProjectionNeck`` (the 128-d L2-normalised embeddings), both loaded
    from the contrastive checkpoint and ``frozen``.

    Args:
        necks (list[dict]): The necks, in order of application.
        frozen (bool): Keep every parameter fixed (``requires_grad`` False),
            every normalisation layer in eval mode, and run without a
            graph. Defaults to False.
        init_cfg (dict or list[dict], optional): Initialization config.
            Defaults to None (each neck's own).
    """

    def __init__(self,
                 necks: List[dict],
                 frozen: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(necks, (list, tuple)) or not necks:
            raise ValueError('SequentialNeck `necks` must be a non-empty '
                             f'list of neck configs, got {necks!r}.')
        # mmengine's ModuleList: init_weights reaches every neck (and its
        # Pretrained init_cfg); torch's would skip them.
        self.necks = ModuleList([MODELS.build(neck) for neck in necks])
        self.frozen = frozen
        if frozen:
            for param in self.parameters():
                param.requires_grad = False

    def train(self, mode: bool = True) -> 'SequentialNeck':
        """Set the training mode; a frozen neck stays in eval mode."""
        super().train(mode and not self.frozen)
        return self

    def forward(self, inputs: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
        """Apply every neck in turn.

        Args:
            inputs (tuple[Tensor]): The backbone outputs.

        Returns:
            tuple[Tensor]: The output of the last neck.
        """
        with torch.no_grad() if self.frozen else nullcontext():
            for neck in self.necks:
                inputs = neck(inputs)
        return inputs
