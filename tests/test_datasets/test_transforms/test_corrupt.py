"""ImageCorruption: the library's corruptions, seeded per sample."""
import sys

import mmcv
import numpy as np
import pytest
from imagecorruptions import corrupt, get_corruption_names
from mmpretrain.registry import TRANSFORMS

import gradmix_plugin  # noqa: F401  (registers the plugin)
from gradmix_plugin.datasets.transforms import (
    CORRUPTIONS,
    EXTRA_CORRUPTIONS,
    ImageCorruption,
    corruption_seed,
)


@pytest.fixture(scope='module')
def rgb():
    return np.random.default_rng(0).integers(0, 256, (32, 32, 3),
                                             dtype=np.uint8)


def test_names_are_the_library_benchmark_and_extra_corruptions():
    assert list(CORRUPTIONS) == get_corruption_names('common')
    assert list(EXTRA_CORRUPTIONS) == get_corruption_names('validation')


@pytest.mark.parametrize('corruption', CORRUPTIONS)
def test_equals_the_library_with_the_same_seed_and_is_deterministic(
        corruption, rgb):
    transform = TRANSFORMS.build(
        dict(type='ImageCorruption', corruption=corruption, severity=3))
    seed = corruption_seed(0, corruption, 3, 7)
    np.random.seed(seed)
    kwargs = (dict(seed=seed)
              if corruption in ('impulse_noise', 'glass_blur') else {})
    expected = corrupt(rgb.copy(), 3, corruption, **kwargs)

    # BGR in, BGR out, as mmcv's LoadImageFromFile gives.
    bgr = mmcv.rgb2bgr(rgb)
    np.random.seed(123)
    before = np.random.get_state()[1].copy()
    first = transform(dict(img=bgr.copy(), sample_idx=7))['img']
    # The global random state is restored.
    np.testing.assert_array_equal(np.random.get_state()[1], before)
    second = transform(dict(img=bgr.copy(), sample_idx=7))['img']
    assert first.dtype == np.uint8 and first.shape == (32, 32, 3)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(mmcv.bgr2rgb(first), expected)


def test_rgb_order_and_seed_depends_on_sample(rgb):
    transform = ImageCorruption('gaussian_noise', 2, channel_order='rgb')
    a = transform(dict(img=rgb.copy(), sample_idx=0))['img']
    b = transform(dict(img=rgb.copy(), sample_idx=1))['img']
    assert not np.array_equal(a, b)
    seed = corruption_seed(0, 'gaussian_noise', 2, 0)
    np.random.seed(seed)
    np.testing.assert_array_equal(a, corrupt(rgb.copy(), 2, 'gaussian_noise'))
    other = ImageCorruption('gaussian_noise', 2, channel_order='rgb', seed=1)
    assert not np.array_equal(
        a, other(dict(img=rgb.copy(), sample_idx=0))['img'])


def test_grayscale_image_keeps_its_shape(rgb):
    out = ImageCorruption('contrast', 1)(dict(img=rgb[..., 0].copy(),
                                               sample_idx=0))['img']
    assert out.shape == (32, 32) and out.dtype == np.uint8


@pytest.mark.parametrize('kwargs, match', [
    (dict(corruption='rain', severity=1), "'rain'.*gaussian_noise"),
    (dict(corruption='fog', severity=0), 'severity 0 '),
    (dict(corruption='fog', severity=6), 'severity 6 '),
    (dict(corruption='fog', severity=2.0), 'severity 2.0 '),
    (dict(corruption='fog', severity=1, channel_order='hsv'), "'hsv'"),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ImageCorruption(**kwargs)


def test_bad_images_and_missing_sample_idx(rgb):
    transform = ImageCorruption('fog', 1)
    with pytest.raises(ValueError, match=r'\(16, 16, 3\)'):
        transform(dict(img=rgb[:16, :16].copy(), sample_idx=0))
    with pytest.raises(ValueError, match='float32'):
        transform(dict(img=rgb.astype(np.float32), sample_idx=0))
    with pytest.raises(KeyError, match='sample_idx'):
        transform(dict(img=rgb.copy()))


def test_install_hint_when_the_library_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, 'imagecorruptions', None)
    with pytest.raises(ImportError, match=r'gradmix-plugin\[robustness\]'):
        ImageCorruption('fog', 1)
