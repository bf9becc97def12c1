"""OpenOOD's benchmark image lists as an mmpretrain dataset."""
import ast
import os.path as osp
from typing import List, Optional, Sequence, Union

from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

#: Image folder of OpenOOD v1.5's CIFAR / MNIST / Tiny-ImageNet benchmarks
#: (``images_largescale`` holds the ImageNet ones).
DEFAULT_IMAGE_DIR = 'images_classic'


@DATASETS.register_module()
class OpenOODImglist(BaseDataset):
    """A split of an OpenOOD v1.5 benchmark, read from its image list.

    OpenOOD (`Jingkang50/OpenOOD <https://github.com/Jingkang50/OpenOOD>`_)
    defines every benchmark by text files
    ``<data_root>/benchmark_imglist/<benchmark>/<split>_<source>.txt``, one
    image per line: a path relative to the image folder
    (``<data_root>/images_classic``), a space, and an integer label (a
    Python dict instead of a label, as in some of OpenOOD's lists, gives
    label 0, as OpenOOD's ``ImglistDataset`` does). With OpenOOD's data
    (``scripts/download/download.py``) this dataset reads exactly its
    benchmark images, e.g. for CIFAR-10 the ID test set
    ``test_cifar10.txt`` and the OOD sets ``test_cifar100.txt``,
    ``test_tin.txt`` (near), ``test_mnist.txt``, ``test_svhn.txt``,
    ``test_texture.txt``, ``test_places365.txt`` (far). Wrap the OOD ones
    in ``OODDataset`` (which labels them -1).

    Refused with the offending value: a missing list (with the path and
    how to get it), a line without a label, an absolute image path, and an
    empty list.

    Args:
        data_root (str): OpenOOD's ``data`` folder (holding
            ``benchmark_imglist`` and ``images_classic``).
        benchmark (str): The benchmark (ID dataset), e.g. ``'cifar10'``.
        source (str): The dataset of the list, e.g. ``'cifar10'`` (ID) or
            ``'cifar100'``, ``'tin'``, ``'mnist'``, ... (OOD).
        split (str): ``'test'``, ``'val'`` or ``'train'``.
            Defaults to ``'test'``.
        image_dir (str): Image folder below ``data_root``.
            Defaults to :data:`DEFAULT_IMAGE_DIR`.
        ann_file (str, optional): Another list file (overrides
            ``benchmark``, ``source`` and ``split``). Defaults to None.
        classes (Sequence[str], optional): Class names of the ID set.
            Defaults to None.
        indices (int | Sequence[int], optional): Keep only these lines (or
            the first ``indices``). Defaults to None (all).
        **kwargs: Other arguments of mmpretrain's ``BaseDataset``
            (``pipeline``, ``test_mode``, ``lazy_init``, ...).
    """

    def __init__(self,
                 data_root: str,
                 benchmark: str = 'cifar10',
                 source: str = 'cifar10',
                 split: str = 'test',
                 image_dir: str = DEFAULT_IMAGE_DIR,
                 ann_file: Optional[str] = None,
                 classes: Optional[Sequence[str]] = None,
                 indices: Optional[Union[int, Sequence[int]]] = None,
                 **kwargs) -> None:
        if ann_file is None:
            ann_file = osp.join('benchmark_imglist', benchmark,
                                f'{split}_{source}.txt')
        self.benchmark, self.source, self.split = benchmark, source, split
        self.image_dir = image_dir
        metainfo = kwargs.pop('metainfo', None)
        if classes is not None:
            metainfo = dict(metainfo or {}, classes=tuple(classes))
        super().__init__(
            ann_file=ann_file,
            data_root=data_root,
            metainfo=metainfo,
            indices=indices,
            **kwargs)

    def load_data_list(self) -> List[dict]:
        """Image paths and labels of the list, in its order."""
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'OpenOOD image list {self.ann_file} not found; download '
                "OpenOOD v1.5's benchmark_imglist and images_classic "
                '(OpenOOD: scripts/download/download.py) and set data_root '
                'to the folder holding them')
        image_root = osp.join(self.data_root, self.image_dir)
        data_list = []
        with open(self.ann_file) as f:
            for number, line in enumerate(f, 1):
                line = line.strip('\n')
                if not line.strip():
                    continue
                tokens = line.split(' ', 1)
                if len(tokens) != 2:
                    raise ValueError(
                        f'{self.ann_file}:{number}: expected "<image> '
                        f'<label>", got {line!r}')
                name, extra = tokens
                if osp.isabs(name):
                    raise ValueError(
                        f'{self.ann_file}:{number}: image path {name!r} is '
                        'absolute; OpenOOD lists give paths relative to '
                        'the image folder')
                try:
                    extra_value = ast.literal_eval(extra.strip())
                except (ValueError, SyntaxError):
                    raise ValueError(
                        f'{self.ann_file}:{number}: label {extra!r} is not '
                        'an integer or a dict') from None
                label = 0 if isinstance(extra_value, dict) else int(
                    extra_value)
                data_list.append(
                    dict(img_path=osp.join(image_root, name),
                         gt_label=label))
        if not data_list:
            raise ValueError(f'OpenOOD image list {self.ann_file} is empty')
        return data_list

    def extra_repr(self) -> List[str]:
        """Benchmark, source and split in ``repr``."""
        return [
            f'Benchmark: \t{self.benchmark}', f'Source: \t{self.source}',
            f'Split: \t{self.split}'
        ]
