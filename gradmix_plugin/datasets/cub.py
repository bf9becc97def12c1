"""CUB-200-2011 in its original layout."""
from typing import Dict, List

from mmengine.fileio import get_file_backend, list_from_file
from mmpretrain.datasets import BaseDataset
from mmpretrain.datasets.categories import CUB_CATEGORIES
from mmpretrain.registry import DATASETS

from .ssb import check_file, check_split_and_root


@DATASETS.register_module()
class CUB2011(BaseDataset):
    """`CUB-200-2011 <https://www.vision.caltech.edu/datasets/cub_200_2011/>`_
    read from its original layout, with the official train/test split.

    Layout::

        data_root/                    CUB_200_2011
        ├── images.txt                "<image id> <path under images/>"
        ├── image_class_labels.txt    "<image id> <class id 1..200>"
        ├── train_test_split.txt      "<image id> <1: train, 0: test>"
        └── images/<class folder>/*.jpg

    The label is the class id - 1, the index the Semantic Shift Benchmark
    lists (protocol 'cub') refer to; ``classes`` are the names of
    ``classes.txt`` in id order (mmpretrain's ``CUB_CATEGORIES``).

    Args:
        data_root (str): The dataset root (the folder holding
            ``images.txt``).
        split (str): 'train' or 'test'. Defaults to 'train'.
        **kwargs: Other keyword arguments of :class:`BaseDataset`
            (``pipeline``, ``test_mode``, ``indices``, ...).
    """

    METAINFO = dict(classes=CUB_CATEGORIES)
    SPLITS = ('train', 'test')
    ANNOTATION_FILES = dict(
        images='images.txt',
        labels='image_class_labels.txt',
        is_train='train_test_split.txt')

    def __init__(self, data_root: str, split: str = 'train', **kwargs):
        check_split_and_root('CUB2011', split, self.SPLITS, data_root)
        self.split = split
        super().__init__(
            ann_file='', data_root=data_root, data_prefix='images', **kwargs)

    def _read(self, key: str) -> Dict[str, str]:
        """One annotation file as ``{image id: value}``."""
        backend = get_file_backend(self.data_root, enable_singleton=True)
        path = check_file(
            backend.join_path(self.data_root, self.ANNOTATION_FILES[key]),
            'CUB2011', 'annotation file')
        values = {}
        for line_no, line in enumerate(list_from_file(path), 1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 2 or fields[0] in values:
                raise ValueError(
                    f'Line {line_no} of {path!r} is not "<new image id> '
                    f'<value>": {line!r}.')
            values[fields[0]] = fields[1]
        return values

    def load_data_list(self) -> List[dict]:
        """Image paths and labels of the split, in ``images.txt`` order."""
        images, labels, is_train = (
            self._read(key) for key in self.ANNOTATION_FILES)
        wanted = '1' if self.split == 'train' else '0'
        valid_ids = [str(c) for c in range(1, len(self.CLASSES) + 1)]
        backend = get_file_backend(self.data_root, enable_singleton=True)
        data_list = []
        for image_id, path in images.items():
            for key, values in (('labels', labels), ('is_train', is_train)):
                if image_id not in values:
                    raise ValueError(
                        f'CUB2011 image id {image_id} of images.txt is not '
                        f'in {self.ANNOTATION_FILES[key]}.')
            if labels[image_id] not in valid_ids:
                raise ValueError(
                    f'CUB2011 class id {labels[image_id]!r} of image '
                    f'{image_id} is outside 1..{len(self.CLASSES)}.')
            if is_train[image_id] not in ('0', '1'):
                raise ValueError(
                    f'CUB2011 train/test flag {is_train[image_id]!r} of image '
                    f'{image_id} is not 1 (train) or 0 (test).')
            if is_train[image_id] == wanted:
                data_list.append(
                    dict(
                        img_path=backend.join_path(self.img_prefix, path),
                        gt_label=int(labels[image_id]) - 1))
        return data_list

    def extra_repr(self) -> List[str]:
        """Extra lines for ``__repr__``."""
        return [f'Split: \t{self.split}', f'Root: \t{self.data_root}']
