"""Tiny-ImageNet-200 in its original folder layout."""
from typing import List

from mmengine.fileio import exists, get_file_backend, list_from_file
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS


@DATASETS.register_module()
class TinyImageNet(BaseDataset):
    """`Tiny-ImageNet-200 <http://cs231n.stanford.edu/tiny-imagenet-200.zip>`_
    read from its original layout.

    Layout::

        data_root/
        ├── wnids.txt                 one wnid per line
        ├── train/<wnid>/images/*.JPEG
        └── val/
            ├── images/*.JPEG
            └── val_annotations.txt   "<file>\\t<wnid>\\t<box>" per line

    The class index of a wnid is its position in SORTED order, the
    ImageFolder order that the open-set split lists refer to; the
    ``classes`` metainfo holds the sorted wnids. Some images are grayscale
    JPEGs: load them with ``LoadImageFromFile`` and its default
    ``color_type='color'``, which decodes every image to 3 channels.

    Args:
        data_root (str): The dataset root (the folder holding ``wnids.txt``).
        split (str): 'train' or 'val'. Defaults to 'train'.
        **kwargs: Other keyword arguments of :class:`BaseDataset`
            (``pipeline``, ``test_mode``, ``indices``, ...).
    """

    SPLITS = ('train', 'val')

    def __init__(self, data_root: str, split: str = 'train', **kwargs):
        if split not in self.SPLITS:
            raise ValueError(f'TinyImageNet `split` {split!r} is not one of '
                             f'{self.SPLITS}.')
        self.split = split
        if not exists(data_root):
            raise FileNotFoundError(
                f'TinyImageNet `data_root` {data_root!r} does not exist.')
        backend = get_file_backend(data_root, enable_singleton=True)
        wnids_file = backend.join_path(data_root, 'wnids.txt')
        if not exists(wnids_file):
            raise FileNotFoundError(
                f'TinyImageNet class list {wnids_file!r} not found: is '
                f'`data_root` {data_root!r} the tiny-imagenet-200 folder?')
        wnids = sorted(
            line.strip() for line in list_from_file(wnids_file)
            if line.strip())
        super().__init__(
            ann_file='',
            data_root=data_root,
            metainfo=dict(classes=tuple(wnids)),
            **kwargs)

    def _join(self, *parts: str) -> str:
        backend = get_file_backend(self.data_root, enable_singleton=True)
        return backend.join_path(self.data_root, *parts)

    def load_data_list(self) -> List[dict]:
        """Image paths and class indices of the split."""
        wnid_to_idx = {wnid: i for i, wnid in enumerate(self.CLASSES)}
        backend = get_file_backend(self.data_root, enable_singleton=True)
        data_list = []
        if self.split == 'train':
            for wnid, gt_label in wnid_to_idx.items():
                folder = self._join('train', wnid, 'images')
                if not exists(folder):
                    raise FileNotFoundError(
                        f'TinyImageNet training folder {folder!r} of class '
                        f'{wnid!r} (from wnids.txt) not found.')
                files = backend.list_dir_or_file(
                    folder, list_dir=False, suffix=('.JPEG', '.jpeg', '.jpg'))
                data_list.extend(
                    dict(
                        img_path=backend.join_path(folder, file),
                        gt_label=gt_label) for file in sorted(files))
        else:
            ann_file = self._join('val', 'val_annotations.txt')
            if not exists(ann_file):
                raise FileNotFoundError(
                    f'TinyImageNet validation annotations {ann_file!r} not '
                    'found.')
            for line_no, line in enumerate(list_from_file(ann_file), 1):
                if not line.strip():
                    continue
                file, wnid = line.split('\t')[:2]
                if wnid not in wnid_to_idx:
                    raise ValueError(
                        f'Class {wnid!r} on line {line_no} of {ann_file!r} '
                        'is not in wnids.txt.')
                data_list.append(
                    dict(
                        img_path=self._join('val', 'images', file),
                        gt_label=wnid_to_idx[wnid]))
        return data_list

    def extra_repr(self) -> List[str]:
        """Extra lines for ``__repr__``."""
        return [f'Split: \t{self.split}', f'Root: \t{self.data_root}']
