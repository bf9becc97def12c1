"""Stanford Cars in the devkit layout or in class folders."""
from typing import List

import numpy as np
from mmengine.fileio import exists, get_file_backend
from mmpretrain.datasets import BaseDataset
from mmpretrain.datasets.categories import STANFORDCARS_CATEGORIES
from mmpretrain.registry import DATASETS
from scipy.io import loadmat

from .ssb import check_file, check_split_and_root


@DATASETS.register_module()
class Cars(BaseDataset):
    """`Stanford Cars <https://ai.stanford.edu/~jkrause/cars/car_dataset.html>`_
    (196 classes) read from the devkit layout or from class folders.

    Devkit layout (the original release; the labelled test annotations
    ``cars_test_annos_withlabels.mat`` were published separately)::

        data_root/
        ├── devkit/
        │   ├── cars_meta.mat                   class_names
        │   ├── cars_train_annos.mat            annotations: class, fname
        │   └── cars_test_annos_withlabels.mat
        ├── cars_train/<fname>
        └── cars_test/<fname>

    Class-folder layout (used when ``devkit/`` is absent)::

        data_root/{train,test}/<class name>/*.jpg

    with the 196 class names of ``cars_meta.mat`` (mmpretrain's
    ``STANFORDCARS_CATEGORIES``), a '/' in a name written as '-'.

    The label is the devkit ``class`` - 1, i.e. the position in the
    ``cars_meta.mat`` order, which the Semantic Shift Benchmark lists
    (protocol 'scars') refer to. That order is NOT the sorted order of the
    names, so the folders are matched by name and all 196 must exist.
    ``.mat`` files are read with ``scipy.io.loadmat``.

    Args:
        data_root (str): The dataset root.
        split (str): 'train' or 'test'. Defaults to 'train'.
        **kwargs: Other keyword arguments of :class:`BaseDataset`
            (``pipeline``, ``test_mode``, ``indices``, ...).
    """

    SPLITS = ('train', 'test')
    ANNOTATION_FILES = dict(
        train='cars_train_annos.mat', test='cars_test_annos_withlabels.mat')
    IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png')

    def __init__(self, data_root: str, split: str = 'train', **kwargs):
        check_split_and_root('Cars', split, self.SPLITS, data_root)
        self.split = split
        backend = get_file_backend(data_root, enable_singleton=True)
        devkit = backend.join_path(data_root, 'devkit')
        self.devkit = exists(devkit)
        if self.devkit:
            meta_file = check_file(
                backend.join_path(data_root, 'devkit', 'cars_meta.mat'),
                'Cars', 'class list')
            classes = tuple(
                str(name) for name in np.atleast_1d(
                    loadmat(meta_file, squeeze_me=True)['class_names']))
            data_prefix = f'cars_{split}'
        else:
            folder = backend.join_path(data_root, split)
            if not exists(folder):
                raise FileNotFoundError(
                    f'Cars found neither {devkit!r} (devkit layout) nor '
                    f'{folder!r} (class-folder layout).')
            classes = STANFORDCARS_CATEGORIES
            data_prefix = split
        super().__init__(
            ann_file='',
            data_root=data_root,
            data_prefix=data_prefix,
            metainfo=dict(classes=classes),
            **kwargs)

    def _load_devkit(self) -> List[dict]:
        backend = get_file_backend(self.data_root, enable_singleton=True)
        ann_file = check_file(
            backend.join_path(self.data_root, 'devkit',
                              self.ANNOTATION_FILES[self.split]), 'Cars',
            'annotation file')
        annotations = np.atleast_1d(
            loadmat(ann_file, squeeze_me=True)['annotations'])
        if 'class' not in (annotations.dtype.names or ()):
            raise ValueError(
                f'Cars annotation file {ann_file!r} has no `class` field '
                f'(fields: {annotations.dtype.names}); the test labels are '
                'in cars_test_annos_withlabels.mat.')
        data_list = []
        for fname, class_id in zip(annotations['fname'],
                                   annotations['class']):
            if not 1 <= int(class_id) <= len(self.CLASSES):
                raise ValueError(
                    f'Cars class {int(class_id)} of {fname!r} in '
                    f'{ann_file!r} is outside 1..{len(self.CLASSES)}.')
            data_list.append(
                dict(
                    img_path=backend.join_path(self.img_prefix, str(fname)),
                    gt_label=int(class_id) - 1))
        return data_list

    def _load_class_folders(self) -> List[dict]:
        backend = get_file_backend(self.data_root, enable_singleton=True)
        folders = [name.replace('/', '-') for name in self.CLASSES]
        present = set(backend.list_dir_or_file(self.img_prefix,
                                               list_file=False))
        missing = [name for name in folders if name not in present]
        unknown = sorted(present - set(folders))
        if missing or unknown:
            raise ValueError(
                f'Cars class folders of {self.img_prefix!r} do not match the '
                f'{len(folders)} classes of cars_meta.mat: missing '
                f'{missing[:5]}{" ..." if len(missing) > 5 else ""} '
                f'({len(missing)}), unexpected {unknown[:5]} '
                f'({len(unknown)}).')
        data_list = []
        for gt_label, folder in enumerate(folders):
            folder = backend.join_path(self.img_prefix, folder)
            files = backend.list_dir_or_file(
                folder, list_dir=False, suffix=self.IMAGE_EXTENSIONS)
            data_list.extend(
                dict(img_path=backend.join_path(folder, file),
                     gt_label=gt_label) for file in sorted(files))
        return data_list

    def load_data_list(self) -> List[dict]:
        """Image paths and labels of the split: annotation order in the
        devkit layout, class then file name order in class folders."""
        if self.devkit:
            return self._load_devkit()
        return self._load_class_folders()

    def extra_repr(self) -> List[str]:
        """Extra lines for ``__repr__``."""
        layout = 'devkit' if self.devkit else 'class folders'
        return [
            f'Split: \t{self.split}', f'Layout: \t{layout}',
            f'Root: \t{self.data_root}'
        ]
