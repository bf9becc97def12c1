"""Data pre-processor for open-set recognition."""
import logging
from collections import Counter
from typing import Union

import torch
from mmengine.logging import print_log
from mmpretrain.models import ClsDataPreprocessor
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from gradmix_plugin.datasets import UNKNOWN_LABEL


@MODELS.register_module()
class OSRDataPreprocessor(ClsDataPreprocessor):
    """:class:`ClsDataPreprocessor` that keeps test labels integer, so that
    unknown samples (``gt_label == -1``) pass, and that accepts multi-view
    inputs.

    - Training (``training=True``): exactly :class:`ClsDataPreprocessor`
      (one-hot ``gt_score`` when ``to_onehot`` or ``batch_augments`` is
      set, batch augments applied). A training batch must contain known
      classes only: a ``gt_label`` of -1 raises a ``ValueError``.
    - Testing: the images are normalised, the data samples are only moved
      to the device; labels stay integer and no one-hot ``gt_score`` is
      made, even with batch augments configured (the parent class would
      one-hot, and crash on -1).
    - Multi-view inputs (mmpretrain's ``MultiView`` + ``PackInputs``): the
      collated ``inputs`` are a list with one entry per view, a
      ``[B, C, H, W]`` tensor (``default_collate``) or a list of
      ``[C, H, W]`` tensors (``pseudo_collate``). Each view is processed
      like a single-view batch, and ``inputs`` comes back as a list of
      ``[B, C, H, W]`` views. Batch augments are not defined on several
      views and raise a ``ValueError`` in training.

    Without ``mean`` and ``std`` the model gets raw 0-255 pixels, which is
    rarely intended (e.g. a ``model.data_preprocessor`` that hides the
    base's top-level one outside the plugin's tools): a warning says so.

    Args:
        Same as :class:`mmpretrain.models.ClsDataPreprocessor`.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._size_warned = False
        if not self._enable_normalize:
            print_log(
                'OSRDataPreprocessor has no mean / std: the model gets raw '
                '0-255 pixels. Set mean and std (e.g. in the top-level '
                'data_preprocessor) unless this is intended.',
                logger='current',
                level=logging.WARNING)

    @staticmethod
    def _is_multi_view(inputs: Union[torch.Tensor, list]) -> bool:
        """Whether collated ``inputs`` hold several views (see above)."""
        return (isinstance(inputs, (list, tuple)) and len(inputs) > 0
                and (isinstance(inputs[0], (list, tuple))
                     or inputs[0].dim() == 4))

    def _check_known_labels(self, data_samples: list) -> None:
        """Raise if a training sample carries the unknown label."""
        for index, sample in enumerate(data_samples or []):
            if (isinstance(sample, DataSample) and 'gt_label' in sample
                    and (sample.gt_label == UNKNOWN_LABEL).any()):
                raise ValueError(
                    f'Training batch sample {index} has gt_label '
                    f'{UNKNOWN_LABEL} (unknown class); training sets must '
                    "hold known classes only (OSRDataset subset='known').")

    def _warn_mixed_sizes(self, view, data_samples) -> None:
        """Warn once when a batch holds images of different sizes, which
        the parent pads to the largest without a word."""
        if self._size_warned or not isinstance(view, (list, tuple)) or \
                len(view) < 2 or not torch.is_tensor(view[0]):
            return
        sizes = [tuple(image.shape[-2:]) for image in view]
        common = Counter(sizes).most_common(1)[0][0]
        odd = next((i for i, size in enumerate(sizes) if size != common),
                   None)
        if odd is None:
            return
        self._size_warned = True
        sample = (data_samples or [None] * len(view))[odd]
        name = getattr(sample, 'metainfo', {}).get('img_path') or \
            f'sample {odd} of the batch'
        print_log(
            f'OSRDataPreprocessor: image {name} is {sizes[odd][0]}x'
            f'{sizes[odd][1]} but the other images of its batch are '
            f'{common[0]}x{common[1]}: it is zero-padded to the largest '
            'size, not resized. Fix the file or add a Resize to the '
            'pipeline. (Warned once.)',
            logger='current',
            level=logging.WARNING)

    def _preprocess_images(self, inputs) -> torch.Tensor:
        """Normalise, convert and stack one view, without its labels."""
        return super().forward({'inputs': inputs})['inputs']

    def forward(self, data: dict, training: bool = False) -> dict:
        """Pre-process a batch.

        Args:
            data (dict): Data sampled from the dataloader.
            training (bool): Whether to enable training-time label
                processing and batch augmentation. Defaults to False.

        Returns:
            dict: ``inputs`` (a tensor, or a list of view tensors) and
            ``data_samples``.
        """
        data_samples = data.get('data_samples', None)
        inputs = data['inputs']
        multi_view = self._is_multi_view(inputs)
        views = list(inputs) if multi_view else [inputs]
        for view in views:
            self._warn_mixed_sizes(view, data_samples)
        if training:
            self._check_known_labels(data_samples)
            if multi_view and self.batch_augments is not None:
                raise ValueError(
                    'OSRDataPreprocessor got a multi-view batch '
                    f'({len(views)} views) but `batch_augments` are '
                    'configured; batch augments apply to single-view '
                    'batches only.')
            # The parent makes the labels of the (first) view.
            first = super().forward(
                {
                    'inputs': views[0],
                    'data_samples': data_samples
                },
                training=True)
            data_samples = first['data_samples']
            views = [first['inputs']] + [
                self._preprocess_images(view) for view in views[1:]
            ]
        else:
            data_samples = self.cast_data(data_samples)
            views = [self._preprocess_images(view) for view in views]
        return {
            'inputs': views if multi_view else views[0],
            'data_samples': data_samples
        }
