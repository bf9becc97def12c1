from typing import List, Optional, Tuple

import torch
from mmpretrain.models.heads import LinearClsHead
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample


@MODELS.register_module()
class OSRLinearClsHead(LinearClsHead):
    """Linear classifier head that also returns what open-set scores need.

    Same as mmpretrain's ``LinearClsHead`` in training; ``predict`` adds to
    every data sample the pre-logits features ``feats`` (1-D, the input of
    the linear layer) and the raw ``logits`` (1-D), besides ``pred_score``
    and ``pred_label``, so that ``OSRMetric`` can compute the kNN and
    logit-based scores of any ``ImageClassifier``; :meth:`get_final_layer`
    gives the scores that need it the final layer's weight and bias.

    Args:
        num_classes (int): Number of known classes.
        in_channels (int): Number of input channels.
        **kwargs: Other arguments of ``LinearClsHead``.
    """

    def get_final_layer(self) -> Tuple[torch.Tensor, torch.Tensor]:
        """Weight ``(C, D)`` and bias ``(C, )`` of the final linear layer
        (detached), whose input is the stored ``feats``; post-hoc scores
        such as ReAct, DICE or ViM read them."""
        return self.fc.weight.detach(), self.fc.bias.detach()

    def predict(
        self,
        feats: Tuple[torch.Tensor],
        data_samples: Optional[List[Optional[DataSample]]] = None
    ) -> List[DataSample]:
        """Inference without augmentation.

        Args:
            feats (tuple[Tensor]): Features from the backbone / neck; the
                last one is classified.
            data_samples (List[DataSample | None], optional): The annotation
                data of every sample. Defaults to None.

        Returns:
            List[DataSample]: Data samples with ``pred_score``,
            ``pred_label``, ``feats`` and ``logits``.
        """
        pre_logits = self.pre_logits(feats)
        logits = self.fc(pre_logits)
        predictions = self._get_predictions(logits, data_samples)
        for data_sample, sample_feats, sample_logits in zip(
                predictions, pre_logits.detach(), logits.detach()):
            data_sample.set_field(
                sample_feats.flatten(), 'feats', dtype=torch.Tensor)
            data_sample.set_field(sample_logits, 'logits', dtype=torch.Tensor)
        return predictions
