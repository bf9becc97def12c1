"""The published corrupted test sets: CIFAR-10-C / CIFAR-100-C arrays and
Tiny-ImageNet-C folders (Hendrycks & Dietterich 2019)."""
import os.path as osp
from typing import List

import numpy as np
from mmpretrain.datasets import CIFAR10, CIFAR100, BaseDataset, CustomDataset
from mmpretrain.registry import DATASETS

from .transforms import SEVERITIES, check_corruption

#: File of the labels in the CIFAR-10-C layout.
LABELS_FILE = 'labels.npy'


def cifar_c_file(data_root: str, corruption: str) -> str:
    """Path of a corruption's images in the CIFAR-10-C layout.

    Args:
        data_root (str): The folder of the ``.npy`` files.
        corruption (str): The corruption name.

    Returns:
        str: ``<data_root>/<corruption>.npy``.
    """
    return osp.join(data_root, f'{corruption}.npy')


def _load_npy(path: str, what: str) -> np.ndarray:
    """Memory-map a ``.npy`` file (only its header is read)."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'CIFAR-10-C {what} file {path!r} not found')
    try:
        return np.load(path, mmap_mode='r')
    except ValueError as err:
        raise ValueError(
            f'CIFAR-10-C {what} file {path!r} is not a readable .npy '
            f'array: {err}') from err


@DATASETS.register_module()
class CIFAR10C(BaseDataset):
    """`CIFAR-10-C <https://zenodo.org/records/2535967>`_: one corruption at
    one severity of the CIFAR-10 test set, from the published arrays.

    Layout::

        data_root/
        ├── labels.npy        (5 N, ) integer labels
        ├── <corruption>.npy  (5 N, H, W, 3) uint8 RGB, severities 1..5
        └── ...               in consecutive blocks of N images

    The published files hold ``N = 10000`` images of 32x32 per severity, in
    the order of the CIFAR-10 test set. The images are in the data info key
    ``img``, so pipelines start without ``LoadImageFromFile``. Wrap the
    dataset in :class:`~gradmix_plugin.datasets.OSRDataset` (e.g.
    ``protocol='cifar10'``, ``subset='known'``) for the known classes of an
    open-set split. The files are memory-mapped: only the selected block is
    read.

    Args:
        data_root (str): The folder of ``labels.npy`` and the
            ``<corruption>.npy`` files.
        corruption (str): One of the 15 benchmark corruptions
            (``gradmix_plugin.datasets.transforms.CORRUPTIONS``) or the 4
            extra ones published with CIFAR-10-C.
        severity (int): 1 to 5.
        channel_order (str): Order of the channels of ``img``: ``'rgb'`` as
            stored, or ``'bgr'`` as mmcv's ``LoadImageFromFile`` gives, for
            pipelines and data preprocessors written for image files.
            Defaults to ``'rgb'``.
        **kwargs: Other keyword arguments of :class:`BaseDataset`
            (``pipeline``, ``metainfo``, ``indices``, ...).
    """

    METAINFO = CIFAR10.METAINFO
    CHANNEL_ORDERS = ('rgb', 'bgr')

    def __init__(self,
                 data_root: str,
                 corruption: str,
                 severity: int,
                 channel_order: str = 'rgb',
                 **kwargs):
        check_corruption(corruption, severity)
        if channel_order not in self.CHANNEL_ORDERS:
            raise ValueError(
                f'{type(self).__name__} `channel_order` {channel_order!r} '
                f'is not one of {self.CHANNEL_ORDERS}')
        self.corruption = corruption
        self.severity = int(severity)
        self.channel_order = channel_order
        if not osp.isdir(data_root):
            raise FileNotFoundError(
                f'{type(self).__name__} `data_root` {data_root!r} is not a '
                'folder')
        images_file = cifar_c_file(data_root, corruption)
        labels_file = osp.join(data_root, LABELS_FILE)
        self._images = _load_npy(images_file, 'images')
        self._all_labels = _load_npy(labels_file, 'labels')
        self._check_arrays(images_file, labels_file)
        super().__init__(ann_file='', data_root=data_root, **kwargs)

    def _check_arrays(self, images_file: str, labels_file: str) -> None:
        """Raise on arrays that do not follow the CIFAR-10-C layout."""
        images, labels = self._images, self._all_labels
        if (images.ndim != 4 or images.shape[3] != 3
                or images.dtype != np.uint8
                or images.shape[0] % len(SEVERITIES)
                or images.shape[0] == 0):
            raise ValueError(
                f'{images_file!r} holds a {images.dtype} array of shape '
                f'{images.shape}; CIFAR-10-C files are uint8 arrays of '
                'shape (5 N, H, W, 3), e.g. (50000, 32, 32, 3): N images '
                'per severity 1..5')
        if labels.ndim != 1 or labels.shape[0] != images.shape[0] or (
                not np.issubdtype(labels.dtype, np.integer)):
            raise ValueError(
                f'{labels_file!r} holds a {labels.dtype} array of shape '
                f'{labels.shape}; expected integer labels of shape '
                f'({images.shape[0]}, ), one per image of {images_file!r}')

    @property
    def images_per_severity(self) -> int:
        """Number of images of each severity block."""
        return self._images.shape[0] // len(SEVERITIES)

    def load_data_list(self) -> List[dict]:
        """The images and labels of the severity block."""
        num = self.images_per_severity
        block = slice((self.severity - 1) * num, self.severity * num)
        labels = np.asarray(self._all_labels[block], dtype=np.int64)
        num_classes = len(self.metainfo['classes'])
        bad = np.unique(labels[(labels < 0) | (labels >= num_classes)])
        if bad.size:
            raise ValueError(
                f'{LABELS_FILE} in {self.data_root!r} has labels '
                f'{bad[:10].tolist()} outside the {num_classes} classes of '
                f'{type(self).__name__} (0..{num_classes - 1}); set '
                '`metainfo=dict(classes=...)` for another label set')
        images = np.array(self._images[block])  # reads the block only
        if self.channel_order == 'bgr':
            images = np.ascontiguousarray(images[..., ::-1])
        return [
            dict(img=image, gt_label=int(label))
            for image, label in zip(images, labels)
        ]

    def extra_repr(self) -> List[str]:
        """Extra lines for ``__repr__``."""
        return [
            f'Corruption: \t{self.corruption}',
            f'Severity: \t{self.severity}',
            f'Root: \t{self.data_root}',
        ]


@DATASETS.register_module()
class CIFAR100C(CIFAR10C):
    """`CIFAR-100-C <https://zenodo.org/records/3555552>`_: the layout of
    :class:`CIFAR10C` with the 100 fine classes of CIFAR-100.

    Args:
        data_root (str): The folder of ``labels.npy`` and the
            ``<corruption>.npy`` files.
        corruption (str): The corruption name.
        severity (int): 1 to 5.
        channel_order (str): ``'rgb'`` or ``'bgr'``. Defaults to ``'rgb'``.
        **kwargs: Other keyword arguments of :class:`BaseDataset`.
    """

    METAINFO = CIFAR100.METAINFO


@DATASETS.register_module()
class TinyImageNetC(CustomDataset):
    """`Tiny-ImageNet-C <https://zenodo.org/records/2536630>`_: one
    corruption at one severity of the Tiny-ImageNet validation set.

    Layout::

        data_root/<corruption>/<severity>/<wnid>/*.JPEG

    The classes are the sorted wnid folders, the class ids of
    :class:`~gradmix_plugin.datasets.TinyImageNet` and of the open-set
    splits (wrap in ``OSRDataset`` with ``protocol='tinyimagenet'``).
    Load the images with ``LoadImageFromFile``.

    Args:
        data_root (str): The Tiny-ImageNet-C folder.
        corruption (str): The corruption name.
        severity (int): 1 to 5.
        **kwargs: Other keyword arguments of mmpretrain's
            :class:`CustomDataset` (``pipeline``, ``indices``, ...).
    """

    def __init__(self, data_root: str, corruption: str, severity: int,
                 **kwargs):
        check_corruption(corruption, severity)
        self.corruption = corruption
        self.severity = int(severity)
        folder = osp.join(data_root, corruption, str(severity))
        if not osp.isdir(folder):
            raise FileNotFoundError(
                f'TinyImageNetC folder {folder!r} (<data_root>/<corruption>/'
                '<severity>) not found')
        super().__init__(
            data_root=data_root,
            data_prefix=osp.join(corruption, str(severity)),
            **kwargs)
