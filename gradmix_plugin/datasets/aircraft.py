"""FGVC-Aircraft (variants) in its original layout."""
from typing import List

from mmengine.fileio import get_file_backend, list_from_file
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from .ssb import check_file, check_split_and_root


@DATASETS.register_module()
class Aircraft(BaseDataset):
    """`FGVC-Aircraft <https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/>`_
    (the 100 variants) read from its original layout.

    Layout::

        data_root/                    fgvc-aircraft-2013b
        └── data/
            ├── variants.txt          one variant name per line
            ├── images_variant_train.txt   "<image id> <variant name>"
            ├── images_variant_val.txt
            ├── images_variant_test.txt
            └── images/<image id>.jpg

    The label of a variant is its position in SORTED order of the names
    (the ``numpy.unique`` order of the Semantic Shift Benchmark's loader,
    which the 'aircraft' lists refer to; ``variants.txt`` is in that order
    too); ``classes`` holds the sorted names. Open-set recognition trains
    on 'trainval', the train then the val images.

    Args:
        data_root (str): The dataset root (the folder holding ``data/``).
        split (str): 'train', 'val', 'trainval' or 'test'. Defaults to
            'trainval'.
        **kwargs: Other keyword arguments of :class:`BaseDataset`
            (``pipeline``, ``test_mode``, ``indices``, ...).
    """

    SPLITS = dict(
        train=('train', ), val=('val', ), trainval=('train', 'val'),
        test=('test', ))

    def __init__(self, data_root: str, split: str = 'trainval', **kwargs):
        check_split_and_root('Aircraft', split, self.SPLITS, data_root)
        self.split = split
        backend = get_file_backend(data_root, enable_singleton=True)
        variants_file = check_file(
            backend.join_path(data_root, 'data', 'variants.txt'), 'Aircraft',
            'class list')
        variants = sorted(
            line.strip() for line in list_from_file(variants_file)
            if line.strip())
        super().__init__(
            ann_file='',
            data_root=data_root,
            data_prefix=backend.join_path('data', 'images'),
            metainfo=dict(classes=tuple(variants)),
            **kwargs)

    def load_data_list(self) -> List[dict]:
        """Image paths and labels of the split, in file order."""
        variant_to_idx = {name: i for i, name in enumerate(self.CLASSES)}
        backend = get_file_backend(self.data_root, enable_singleton=True)
        data_list = []
        for part in self.SPLITS[self.split]:
            ann_file = check_file(
                backend.join_path(self.data_root, 'data',
                                  f'images_variant_{part}.txt'), 'Aircraft',
                'image list')
            for line_no, line in enumerate(list_from_file(ann_file), 1):
                if not line.strip():
                    continue
                image_id, _, variant = line.strip().partition(' ')
                if variant not in variant_to_idx:
                    raise ValueError(
                        f'Variant {variant!r} on line {line_no} of '
                        f'{ann_file!r} is not in variants.txt.')
                data_list.append(
                    dict(
                        img_path=backend.join_path(self.img_prefix,
                                                   f'{image_id}.jpg'),
                        gt_label=variant_to_idx[variant]))
        return data_list

    def extra_repr(self) -> List[str]:
        """Extra lines for ``__repr__``."""
        return [f'Split: \t{self.split}', f'Root: \t{self.data_root}']
