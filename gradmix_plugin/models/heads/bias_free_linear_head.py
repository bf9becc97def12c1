"""Linear classification head without a bias."""
from typing import Optional

from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS
from torch import nn


@MODELS.register_module()
class BiasFreeLinearClsHead(LinearClsHead):
    """mmpretrain's ``LinearClsHead`` with ``fc`` a linear map without a
    bias: the linear probe of the GradMix reference (``main_linear.py``,
    ``networks/resnet_big.py`` ``LinearClassifier``: ``nn.Linear(feat_dim,
    num_classes, bias=False)``), which on L2-normalised embeddings scores
    each class by a scaled cosine similarity only.

    Args:
        num_classes (int): Number of categories.
        in_channels (int): Size of the input features.
        init_cfg (dict, optional): Initialization config. Defaults to
            None: ``dict(type='Normal', layer='Linear', std=0.01)``.
        **kwargs: The other arguments of ``LinearClsHead`` (``loss``,
            ``topk``, ``cal_acc``).
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int,
                 init_cfg: Optional[dict] = None,
                 **kwargs) -> None:
        if init_cfg is None:
            init_cfg = dict(type='Normal', layer='Linear', std=0.01)
        super().__init__(
            num_classes=num_classes,
            in_channels=in_channels,
            init_cfg=init_cfg,
            **kwargs)
        self.fc = nn.Linear(self.in_channels, self.num_classes, bias=False)
