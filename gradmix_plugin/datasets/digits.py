"""scikit-learn's bundled handwritten digits as a 32x32 RGB dataset."""
from functools import lru_cache
from typing import List, Tuple

import mmcv
import numpy as np
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split


@lru_cache(maxsize=1)
def load_digits_arrays(
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The upsampled digits and their fixed train/test split, cached.

    Returns:
        tuple: ``(images, labels, train_indices, test_indices)``; ``images``
        is uint8 ``[1797, 32, 32, 3]`` and every array is read-only.
    """
    digits = load_digits()
    images = []
    for image in digits.images:  # 8x8 float, values 0..16
        image = mmcv.imresize(
            image.astype(np.float32) * (255 / 16),
            DigitsDataset.IMAGE_SIZE,
            interpolation='bilinear')
        image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
        images.append(np.repeat(image[..., None], 3, axis=2))
    images = np.stack(images)
    labels = digits.target.astype(np.int64)
    train_indices, test_indices = train_test_split(
        np.arange(len(labels)),
        test_size=DigitsDataset.TEST_FRACTION,
        stratify=labels,
        random_state=DigitsDataset.SPLIT_SEED)
    arrays = (images, labels, np.sort(train_indices), np.sort(test_indices))
    for array in arrays:
        array.flags.writeable = False
    return arrays


@DATASETS.register_module()
class DigitsDataset(BaseDataset):
    """The 1797 handwritten digits bundled with scikit-learn
    (``sklearn.datasets.load_digits``), as 32x32 RGB images.

    Embedded, so it needs no download: for demos and tests. Each 8x8 image
    (values 0..16) is scaled to 0..255, upsampled to 32x32 with bilinear
    interpolation (``mmcv.imresize``, cv2 ``INTER_LINEAR``), rounded to
    uint8 and repeated over 3 channels. The train/test split is fixed and
    stratified (``train_test_split`` with ``test_size=0.3`` and
    ``random_state=0``): 1257 train and 540 test images. The images are in
    the data info key ``img`` (``HxWx3`` uint8), so pipelines start
    without ``LoadImageFromFile``. Classes are '0'..'9'; the open-set
    protocol 'digits' reuses the MNIST splits.

    Args:
        split (str): 'train' or 'test'. Defaults to 'train'.
        **kwargs: Other keyword arguments of :class:`BaseDataset`
            (``pipeline``, ``test_mode``, ``indices``, ...).
    """

    METAINFO = {'classes': tuple(str(digit) for digit in range(10))}
    SPLITS = ('train', 'test')
    IMAGE_SIZE = (32, 32)
    TEST_FRACTION = 0.3
    SPLIT_SEED = 0

    def __init__(self, split: str = 'train', **kwargs):
        if split not in self.SPLITS:
            raise ValueError(f'DigitsDataset `split` {split!r} is not one '
                             f'of {self.SPLITS}.')
        self.split = split
        super().__init__(ann_file='', **kwargs)

    def load_data_list(self) -> List[dict]:
        """In-memory images and labels of the split."""
        images, labels, train_indices, test_indices = load_digits_arrays()
        indices = train_indices if self.split == 'train' else test_indices
        return [
            dict(img=images[i], gt_label=int(labels[i])) for i in indices
        ]

    def extra_repr(self) -> List[str]:
        """Extra lines for ``__repr__``."""
        return [f'Split: \t{self.split}']
