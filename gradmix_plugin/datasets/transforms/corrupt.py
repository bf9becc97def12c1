"""ImageNet-C corruptions as a pipeline transform, seeded per sample."""
import inspect
from typing import Optional

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform
from mmpretrain.registry import TRANSFORMS

#: The 15 corruptions of the ImageNet-C benchmark (Hendrycks & Dietterich
#: 2019), in the benchmark's order: noise, blur, weather, digital.
CORRUPTIONS = ('gaussian_noise', 'shot_noise', 'impulse_noise',
               'defocus_blur', 'glass_blur', 'motion_blur', 'zoom_blur',
               'snow', 'frost', 'fog', 'brightness', 'contrast',
               'elastic_transform', 'pixelate', 'jpeg_compression')
#: The 4 held-out corruptions, also published in CIFAR-10-C.
EXTRA_CORRUPTIONS = ('speckle_noise', 'gaussian_blur', 'spatter',
                     'saturate')
#: Severity levels of the benchmark.
SEVERITIES = (1, 2, 3, 4, 5)

INSTALL_HINT = ('the ImageNet-C corruptions need the imagecorruptions '
                'package: pip install "gradmix-plugin[robustness]" '
                '(or pip install imagecorruptions-imaug)')


def check_corruption(corruption: str, severity: int) -> None:
    """Raise ``ValueError`` unless ``corruption`` and ``severity`` are valid.

    Args:
        corruption (str): A name of :data:`CORRUPTIONS` or
            :data:`EXTRA_CORRUPTIONS`.
        severity (int): A level of :data:`SEVERITIES`.
    """
    if corruption not in CORRUPTIONS + EXTRA_CORRUPTIONS:
        raise ValueError(
            f'unknown corruption {corruption!r}; valid corruptions: '
            f'{", ".join(CORRUPTIONS + EXTRA_CORRUPTIONS)}')
    if (isinstance(severity, bool)
            or not isinstance(severity, (int, np.integer))
            or severity not in SEVERITIES):
        raise ValueError(
            f'corruption severity {severity!r} is not an integer in 1..5')


def corruption_seed(seed: int, corruption: str, severity: int,
                    sample_idx: int) -> int:
    """The seed of one corrupted sample.

    Args:
        seed (int): Base seed.
        corruption (str): Corruption name.
        severity (int): Severity level.
        sample_idx (int): Index of the sample in its dataset.

    Returns:
        int: A 32-bit seed drawn from ``numpy.random.SeedSequence`` over
        the four values (the corruption by its position in the lists).
    """
    corruption_id = (CORRUPTIONS + EXTRA_CORRUPTIONS).index(corruption)
    entropy = [seed, corruption_id, severity, sample_idx]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def _import_imagecorruptions():
    try:
        import imagecorruptions
    except ImportError as err:
        raise ImportError(INSTALL_HINT) from err
    return imagecorruptions


@TRANSFORMS.register_module()
class ImageCorruption(BaseTransform):
    """Apply one ImageNet-C corruption at one severity, the same for a
    sample at every call.

    `Benchmarking Neural Network Robustness to Common Corruptions and
    Perturbations <https://arxiv.org/abs/1903.12261>`_, implemented by the
    maintained ``imagecorruptions-imaug`` package (import name
    ``imagecorruptions``; ``pip install "gradmix-plugin[robustness]"``).

    Note:
        The corruption parameters are those of ImageNet-C. The published
        CIFAR-10-C / CIFAR-100-C files were made with other parameters,
        tuned for 32x32 images, so images corrupted here are not CIFAR-10-C
        and their accuracies are not comparable with numbers on those
        files (read them with :class:`~gradmix_plugin.datasets.CIFAR10C`).
        The library needs images of at least 32x32 pixels.

        The library draws from numpy's global random state (and takes an
        explicit ``seed`` for ``impulse_noise`` and ``glass_blur``). The
        transform seeds it with :func:`corruption_seed` of ``seed``, the
        corruption, the severity and the sample's ``sample_idx``, and
        restores the previous global state afterwards, so results do not
        depend on the order, the worker or the epoch in which samples are
        loaded, and nothing else's random draws change.

    Required keys: ``img`` (``HxWx3`` or ``HxW`` uint8) and ``sample_idx``.
    Modified keys: ``img`` (uint8, same channel order and shape).

    Args:
        corruption (str): One of :data:`CORRUPTIONS` (the 15 benchmark
            corruptions) or :data:`EXTRA_CORRUPTIONS`.
        severity (int): 1 to 5.
        channel_order (str): Channel order of ``img``: ``'bgr'`` (what
            mmcv's ``LoadImageFromFile`` gives) or ``'rgb'`` (e.g. in-memory
            datasets such as ``DigitsDataset`` or mmpretrain's ``CIFAR10``).
            The library works on RGB. Defaults to ``'bgr'``.
        seed (int): Base seed. Defaults to 0.
    """

    CHANNEL_ORDERS = ('bgr', 'rgb')

    def __init__(self,
                 corruption: str,
                 severity: int,
                 channel_order: str = 'bgr',
                 seed: int = 0) -> None:
        check_corruption(corruption, severity)
        if channel_order not in self.CHANNEL_ORDERS:
            raise ValueError(
                f'ImageCorruption `channel_order` {channel_order!r} is not '
                f'one of {self.CHANNEL_ORDERS}')
        imagecorruptions = _import_imagecorruptions()
        self.corruption = corruption
        self.severity = int(severity)
        self.channel_order = channel_order
        self.seed = seed
        self._corrupt = imagecorruptions.corrupt
        function = imagecorruptions.corruption_dict[corruption]
        self._takes_seed = 'seed' in inspect.signature(function).parameters

    def corrupt(self, img: np.ndarray, sample_idx: int) -> np.ndarray:
        """Corrupt one image.

        Args:
            img (np.ndarray): ``HxWx3`` or ``HxW`` uint8 image in
                ``channel_order``.
            sample_idx (int): The sample's index, part of its seed.

        Returns:
            np.ndarray: The corrupted uint8 image, same shape and order.
        """
        if img.dtype != np.uint8 or img.ndim not in (2, 3) or min(
                img.shape[:2]) < 32 or (img.ndim == 3 and img.shape[2] != 3):
            raise ValueError(
                f'ImageCorruption needs a uint8 HxWx3 or HxW image of at '
                f'least 32x32 pixels, got {img.dtype} {img.shape}')
        rgb = img if img.ndim == 2 or self.channel_order == 'rgb' else \
            mmcv.bgr2rgb(img)
        seed = corruption_seed(self.seed, self.corruption, self.severity,
                               sample_idx)
        kwargs = dict(seed=seed) if self._takes_seed else {}
        state = np.random.get_state()
        np.random.seed(seed)
        try:
            out = self._corrupt(
                rgb,
                severity=self.severity,
                corruption_name=self.corruption,
                **kwargs)
        finally:
            np.random.set_state(state)
        out = np.clip(np.rint(out), 0, 255).astype(np.uint8)
        if img.ndim == 2:
            return np.ascontiguousarray(out[..., 0])
        if self.channel_order == 'bgr':
            out = mmcv.rgb2bgr(out)
        return np.ascontiguousarray(out)

    def transform(self, results: dict) -> Optional[dict]:
        """Corrupt ``results['img']``.

        Args:
            results (dict): The data info, with ``img`` and ``sample_idx``.

        Returns:
            dict: The same dict, ``img`` corrupted.
        """
        if 'sample_idx' not in results:
            raise KeyError(
                'ImageCorruption needs `sample_idx` in the data info to '
                'seed each sample; datasets derived from mmengine '
                'BaseDataset and OSRDataset set it')
        results['img'] = self.corrupt(results['img'],
                                      int(results['sample_idx']))
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(corruption={self.corruption!r}, '
                f'severity={self.severity}, '
                f'channel_order={self.channel_order!r}, seed={self.seed})')
