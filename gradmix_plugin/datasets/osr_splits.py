"""The standard open-set recognition class splits, as data.

Five fixed splits per protocol, introduced by Neal et al., "Open Set
Learning with Counterfactual Images" (ECCV 2018) and used unchanged by
ARPL (Chen et al., TPAMI 2021), Vaze et al., "Open-Set Recognition: a Good
Closed-Set Classifier is All You Need" (ICLR 2022) and GradMix. Results
are reported as mean and std over the five splits.

Every list holds the class ids of the wrapped dataset (for Tiny-ImageNet,
the position of the wnid in sorted order). Known classes are relabelled
``known.index(c)``, so the ORDER of each list matters and is kept as
published. The lists are kept with their known defects, for comparability:

- CIFAR10 splits 0 and 1 are the same known class set (in another order);
- SVHN splits 0 and 1 are the same known class set;
- the CIFAR+N known splits 1 and 2 are the same class set;
- ARPL iterates the splits in reverse order (its run i uses split 4 - i
  here).

The fine-grained protocols of the Semantic Shift Benchmark ('cub',
'aircraft', 'scars', see :mod:`gradmix_plugin.datasets.ssb`) have one known
class list and two named splits, 'easy' and 'hard', that select the unknown
classes of the same dataset.
"""
from typing import Dict, List, NamedTuple, Optional, Tuple, Union

from .ssb import SSB_DIFFICULTIES, SSB_NUM_CLASSES, load_ssb_split

ClassSplits = Tuple[Tuple[int, ...], ...]

NUM_SPLITS = 5

MNIST_KNOWN: ClassSplits = (
    (2, 4, 5, 9, 8, 3),
    (3, 2, 6, 9, 4, 0),
    (5, 8, 3, 2, 4, 6),
    (3, 7, 8, 4, 0, 5),
    (6, 3, 4, 9, 8, 2),
)

SVHN_KNOWN: ClassSplits = (
    (5, 3, 7, 2, 8, 6),
    (3, 8, 7, 6, 2, 5),
    (8, 9, 4, 7, 2, 1),
    (3, 8, 2, 5, 0, 6),
    (4, 9, 2, 7, 1, 0),
)

CIFAR10_KNOWN: ClassSplits = (
    (0, 6, 4, 9, 1, 7),
    (7, 6, 4, 9, 0, 1),
    (1, 5, 7, 3, 9, 4),
    (8, 6, 1, 9, 0, 7),
    (2, 4, 1, 7, 9, 6),
)

# CIFAR+N: 4 known CIFAR-10 classes (CIFAR-10 ids) ...
CIFAR_PLUS_KNOWN: ClassSplits = (
    (4, 7, 9, 1),
    (6, 7, 1, 9),
    (9, 6, 1, 7),
    (6, 4, 9, 1),
    (1, 0, 9, 8),
)

# ... and N unknown CIFAR-100 classes (CIFAR-100 fine-label ids), whose
# images come from the CIFAR-100 test set.
CIFAR_PLUS10_UNKNOWN: ClassSplits = (
    (30, 25, 1, 9, 8, 0, 46, 52, 49, 71),
    (41, 9, 49, 40, 73, 60, 48, 30, 95, 71),
    (8, 9, 49, 40, 73, 60, 48, 95, 30, 71),
    (95, 60, 30, 73, 46, 49, 68, 99, 8, 71),
    (33, 2, 3, 97, 46, 21, 64, 63, 88, 43),
)

CIFAR_PLUS50_UNKNOWN: ClassSplits = (
    (27, 94, 29, 77, 88, 26, 69, 48, 75, 5, 59, 93, 39, 57, 45, 40, 78, 20,
     98, 47, 66, 70, 91, 76, 41, 83, 99, 32, 53, 72, 2, 95, 21, 73, 84, 68,
     35, 11, 55, 60, 30, 25, 1, 9, 8, 0, 46, 52, 49, 71),
    (65, 97, 86, 24, 45, 67, 2, 3, 91, 98, 79, 29, 62, 82, 33, 76, 0, 35, 5,
     16, 54, 11, 99, 52, 85, 1, 25, 66, 28, 84, 23, 56, 75, 46, 21, 72, 55,
     68, 8, 69, 41, 9, 49, 40, 73, 60, 48, 30, 95, 71),
    (20, 83, 65, 97, 94, 2, 93, 16, 67, 29, 62, 33, 24, 98, 5, 86, 35, 54, 0,
     91, 52, 66, 85, 84, 56, 11, 1, 76, 25, 55, 21, 99, 72, 41, 23, 75, 28,
     68, 69, 46, 8, 9, 49, 40, 73, 60, 48, 95, 30, 71),
    (92, 82, 77, 64, 5, 33, 62, 56, 70, 0, 20, 28, 67, 14, 84, 53, 91, 29,
     85, 2, 52, 83, 75, 35, 11, 21, 72, 98, 55, 1, 41, 76, 25, 66, 69, 9, 48,
     54, 40, 23, 95, 60, 30, 73, 46, 49, 68, 99, 8, 71),
    (47, 6, 19, 0, 62, 93, 59, 65, 54, 70, 34, 55, 23, 38, 72, 76, 53, 31,
     78, 96, 77, 27, 92, 18, 82, 50, 98, 32, 1, 75, 83, 4, 51, 35, 80, 11,
     74, 66, 36, 42, 33, 2, 3, 97, 46, 21, 64, 63, 88, 43),
)

# Tiny-ImageNet: 20 known of the 200 classes (wnid index in sorted order).
TINYIMAGENET_KNOWN: ClassSplits = (
    (108, 147, 17, 58, 193, 123, 72, 144, 75, 167, 134, 14, 81, 171, 44, 197,
     152, 66, 1, 133),
    (198, 161, 91, 59, 57, 134, 61, 184, 90, 35, 29, 23, 199, 38, 133, 19,
     186, 18, 85, 67),
    (177, 0, 119, 26, 78, 80, 191, 46, 134, 92, 31, 152, 27, 60, 114, 50, 51,
     133, 162, 93),
    (98, 36, 158, 177, 189, 157, 170, 191, 82, 196, 138, 166, 43, 13, 152, 11,
     75, 174, 193, 190),
    (95, 6, 145, 153, 0, 143, 31, 23, 189, 81, 20, 21, 89, 26, 36, 170, 102,
     177, 108, 169),
)


class OSRProtocol(NamedTuple):
    """One open-set protocol: its five splits and the datasets they index.

    Args:
        known (ClassSplits): Known class ids per split.
        num_known_dataset_classes (int): Number of classes of the dataset
            the known ids refer to.
        unknown (ClassSplits, optional): Unknown class ids per split, in a
            second dataset, or in the same dataset when
            ``num_unknown_dataset_classes`` is None. None means "all other
            classes of the same dataset".
        num_unknown_dataset_classes (int, optional): Number of classes of
            the second dataset the unknown ids refer to; None when the
            unknown classes belong to the same dataset.
        split_names (tuple[str], optional): Names of the splits (the SSB
            difficulties), which ``split`` then takes instead of an index.
            None: the splits are indexed 0..4.
    """
    known: ClassSplits
    num_known_dataset_classes: int
    unknown: Optional[ClassSplits] = None
    num_unknown_dataset_classes: Optional[int] = None
    split_names: Optional[Tuple[str, ...]] = None


def _ssb_protocol(name: str) -> OSRProtocol:
    """The SSB protocol of one dataset: the same known classes for every
    difficulty, whose unknown classes belong to the same dataset."""
    known, unknown = load_ssb_split(name)
    return OSRProtocol(
        known=(tuple(known), ) * len(SSB_DIFFICULTIES),
        num_known_dataset_classes=SSB_NUM_CLASSES[name],
        unknown=tuple(tuple(unknown[d]) for d in SSB_DIFFICULTIES),
        split_names=SSB_DIFFICULTIES)


OSR_PROTOCOLS: Dict[str, OSRProtocol] = {
    'mnist': OSRProtocol(MNIST_KNOWN, 10),
    'svhn': OSRProtocol(SVHN_KNOWN, 10),
    'cifar10': OSRProtocol(CIFAR10_KNOWN, 10),
    'cifar_plus10': OSRProtocol(CIFAR_PLUS_KNOWN, 10, CIFAR_PLUS10_UNKNOWN,
                                100),
    'cifar_plus50': OSRProtocol(CIFAR_PLUS_KNOWN, 10, CIFAR_PLUS50_UNKNOWN,
                                100),
    'tinyimagenet': OSRProtocol(TINYIMAGENET_KNOWN, 200),
    # The embedded sklearn digits reuse the MNIST splits.
    'digits': OSRProtocol(MNIST_KNOWN, 10),
    # Semantic Shift Benchmark: split 'easy' or 'hard'.
    **{name: _ssb_protocol(name)
       for name in SSB_NUM_CLASSES},
}


def get_osr_protocol(protocol: str) -> OSRProtocol:
    """Look up a protocol by name.

    Args:
        protocol (str): One of ``OSR_PROTOCOLS``.

    Returns:
        OSRProtocol: The protocol.
    """
    if protocol not in OSR_PROTOCOLS:
        raise ValueError(
            f'Unknown OSR protocol {protocol!r}; valid protocols are '
            f'{sorted(OSR_PROTOCOLS)}.')
    return OSR_PROTOCOLS[protocol]


def get_osr_split(
        protocol: str,
        split: Union[int, str]) -> Tuple[List[int], Optional[List[int]]]:
    """The known and unknown class ids of one split of a protocol.

    Args:
        protocol (str): One of ``OSR_PROTOCOLS``.
        split (int | str): Split index, 0 to 4, or for the SSB protocols
            the difficulty, 'easy' or 'hard'.

    Returns:
        tuple: ``(known, unknown)``; ``unknown`` is None when the unknown
        classes are all other classes of the same dataset.
    """
    osr_protocol = get_osr_protocol(protocol)
    if osr_protocol.split_names is not None:
        if not isinstance(split, str) or split not in osr_protocol.split_names:
            raise ValueError(
                f'OSR split {split!r} for protocol {protocol!r} is not one '
                f'of {osr_protocol.split_names}.')
        split = osr_protocol.split_names.index(split)
    elif (isinstance(split, bool) or not isinstance(split, int)
            or not 0 <= split < NUM_SPLITS):
        raise ValueError(
            f'OSR split index {split!r} for protocol {protocol!r} is '
            f'outside 0..{NUM_SPLITS - 1}.')
    known = list(osr_protocol.known[split])
    if osr_protocol.unknown is None:
        return known, None
    return known, list(osr_protocol.unknown[split])
