import numpy as np
import pytest
from mmpretrain.registry import DATASETS
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.metrics import pairwise_distances_argmin

from gradmix_plugin.datasets import DigitsDataset


def _pillow_bilinear_32x32(images):
    """An independent upsampling: Pillow's bilinear filter, 0..255 float."""
    return np.stack([
        np.asarray(
            Image.fromarray((img * 255 / 16).astype(np.float32),
                            'F').resize((32, 32), Image.BILINEAR))
        for img in images
    ])


def test_train_and_test_partition_the_digits_stratified():
    digits = load_digits()
    train = DATASETS.build(dict(type='DigitsDataset', split='train'))
    test = DATASETS.build(dict(type='DigitsDataset', split='test'))
    assert len(train) + len(test) == len(digits.target)
    assert train.CLASSES == tuple('0123456789')

    per_class = np.bincount(digits.target)
    test_per_class = np.bincount(test.get_gt_labels(), minlength=10)
    assert np.all(np.abs(test_per_class - 0.3 * per_class) <= 1)

    # Each image is a bilinearly upsampled sklearn digit of its own label,
    # and every sklearn digit is used exactly once.
    images = np.stack(
        [train.get_data_info(i)['img'] for i in range(len(train))] +
        [test.get_data_info(i)['img'] for i in range(len(test))])
    labels = np.concatenate([train.get_gt_labels(), test.get_gt_labels()])
    reference = _pillow_bilinear_32x32(digits.images)
    flat_images = images[..., 0].reshape(len(images), -1).astype(np.float32)
    nearest = pairwise_distances_argmin(flat_images,
                                        reference.reshape(len(images), -1))
    assert sorted(nearest) == list(range(len(images)))
    assert np.abs(flat_images - reference[nearest].reshape(
        len(images), -1)).max() <= 1
    np.testing.assert_array_equal(digits.target[nearest], labels)


def test_images_are_32x32_rgb_uint8_in_memory():
    dataset = DigitsDataset(split='test')
    info = dataset.get_data_info(3)
    img = info['img']
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8
    assert (img[..., 0] == img[..., 1]).all() and (img[..., 0] == img[...,
                                                                      2]).all()
    assert img.max() > 128 and img.min() == 0
    assert 'img_path' not in info
    img[:] = 0  # the data info is a copy: the cache is not modified
    assert dataset.get_data_info(3)['img'].max() > 0


def test_split_is_fixed_and_pipelines_start_from_the_array():
    first = DigitsDataset(split='train').get_gt_labels()
    second = DigitsDataset(split='train').get_gt_labels()
    np.testing.assert_array_equal(first, second)
    dataset = DigitsDataset(
        split='train',
        pipeline=[
            dict(type='RandomCrop', crop_size=32, padding=4),
            dict(type='PackInputs')
        ])
    packed = dataset[0]
    assert packed['inputs'].shape == (3, 32, 32)
    assert int(packed['data_samples'].gt_label) == first[0]


def test_bad_split_is_named():
    with pytest.raises(ValueError, match="'val'"):
        DigitsDataset(split='val')
