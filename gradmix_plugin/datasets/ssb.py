"""The Semantic Shift Benchmark (SSB) open-set splits of the fine-grained
datasets, read from the JSON lists shipped with the package.

Vaze et al., "Open-Set Recognition: a Good Closed-Set Classifier is All
You Need" (ICLR 2022), fix ONE split per dataset: a list of known classes
and the unknown classes graded by their semantic distance to the known
ones ('Easy', 'Medium', 'Hard'). Results are reported for 'Easy' and for
'Hard', which folds 'Medium' into 'Hard', as the benchmark does.

Every list holds class indices of the dataset:

- CUB-200-2011 (``cub``): class id - 1 (``image_class_labels.txt``,
  ``classes.txt``; ids 1..200);
- FGVC-Aircraft (``aircraft``): position of the variant in SORTED order of
  the variant names (``numpy.unique`` in the benchmark's loader), which is
  also the order of ``variants.txt``;
- Stanford Cars (``scars``): class - 1 of the devkit annotations, i.e. the
  order of ``class_names`` in ``cars_meta.mat``.
"""
import json
import os.path as osp
from typing import Dict, List, Sequence, Tuple

from mmengine.fileio import exists

#: The unknown subsets of an SSB split; 'hard' is Medium + Hard.
SSB_DIFFICULTIES = ('easy', 'hard')

#: Number of classes of each SSB dataset.
SSB_NUM_CLASSES = dict(cub=200, aircraft=100, scars=196)

SPLIT_DIR = osp.join(osp.dirname(osp.abspath(__file__)), 'ssb_splits')


def load_ssb_split(name: str) -> Tuple[List[int], Dict[str, List[int]]]:
    """The known classes and the unknown classes per difficulty of one SSB
    dataset.

    The lists are checked: every class index is inside the dataset, no
    class is listed twice, and known plus unknown classes cover the whole
    dataset.

    Args:
        name (str): 'cub', 'aircraft' or 'scars'.

    Returns:
        tuple: ``(known, unknown)``; ``known`` keeps the published order
        (labels are ``known.index(c)``), ``unknown`` maps 'easy' to the
        Easy classes and 'hard' to the Medium then Hard classes.
    """
    if name not in SSB_NUM_CLASSES:
        raise ValueError(f'Unknown SSB dataset {name!r}; valid names are '
                         f'{sorted(SSB_NUM_CLASSES)}.')
    path = osp.join(SPLIT_DIR, f'{name}_ssb_splits.json')
    if not exists(path):
        raise FileNotFoundError(
            f'SSB split list {path!r} not found: the package data of '
            'gradmix_plugin is missing; reinstall the package.')
    with open(path) as f:
        lists = json.load(f)
    known = lists['known_classes']
    graded = lists['unknown_classes']
    unknown = dict(easy=graded['Easy'], hard=graded['Medium'] + graded['Hard'])
    listed = known + unknown['easy'] + unknown['hard']
    num_classes = SSB_NUM_CLASSES[name]
    if sorted(listed) != list(range(num_classes)):
        raise ValueError(
            f'SSB split list {path!r} does not list each of the '
            f'{num_classes} classes (0..{num_classes - 1}) exactly once.')
    return known, unknown


def check_file(path: str, dataset: str, what: str) -> str:
    """Raise ``FileNotFoundError`` naming ``path`` if it does not exist.

    Args:
        path (str): The file or folder.
        dataset (str): The dataset class name, for the message.
        what (str): What the file is, e.g. 'image list'.

    Returns:
        str: ``path``.
    """
    if not exists(path):
        raise FileNotFoundError(f'{dataset} {what} {path!r} not found.')
    return path


def check_split_and_root(dataset: str, split: str, splits: Sequence[str],
                         data_root: str) -> None:
    """Raise if ``split`` is not one of ``splits`` (``ValueError``) or
    ``data_root`` does not exist (``FileNotFoundError``), naming them.

    Args:
        dataset (str): The dataset class name, for the messages.
        split (str): The requested split.
        splits (Sequence[str]): The splits of the dataset.
        data_root (str): The dataset root.
    """
    if split not in splits:
        raise ValueError(f'{dataset} `split` {split!r} is not one of '
                         f'{tuple(splits)}.')
    check_file(data_root, dataset, '`data_root`')
