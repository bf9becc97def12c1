"""Open-set recognition view of any mmpretrain classification dataset."""
import copy
from typing import List, Optional, Sequence, Union

import numpy as np
from mmengine.dataset import Compose, force_full_init
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from .osr_splits import get_osr_protocol, get_osr_split

#: ``gt_label`` of every sample of an unknown class.
UNKNOWN_LABEL = -1


def _build_dataset(dataset: Union[BaseDataset, dict],
                   argument: str,
                   wrapper: str = 'OSRDataset',
                   types: tuple = (BaseDataset, )) -> BaseDataset:
    """Build a dataset config, or check a built dataset's type.

    A failure to build (e.g. a missing ``data_root``, or a download
    attempted by CIFAR/MNIST datasets whose files are not there) keeps its
    type and message and gets a note naming the dataset and its root.
    ``wrapper`` names the wrapping dataset in the messages, ``types`` are
    the accepted dataset types.
    """
    if isinstance(dataset, dict):
        try:
            dataset = DATASETS.build(dataset)
        except Exception as err:
            err.add_note(
                f'while building {wrapper} `{argument}` of type '
                f'{dataset.get("type")!r} with data_root='
                f'{dataset.get("data_root")!r}: check that the data is '
                'there (see docs/troubleshooting.md)')
            raise
    if not isinstance(dataset, types):
        raise TypeError(
            f'{wrapper} `{argument}` must be one of '
            f'{[t.__name__ for t in types]} or its config, but got '
            f'{type(dataset).__name__}.')
    return dataset


def _check_class_ids(class_ids: Sequence[int], num_classes: int,
                     argument: str, dataset: BaseDataset) -> None:
    """Raise if a class id is not an int in ``range(num_classes)``."""
    for class_id in class_ids:
        if (isinstance(class_id, bool)
                or not isinstance(class_id, (int, np.integer))
                or not 0 <= class_id < num_classes):
            raise ValueError(
                f'Class id {class_id!r} in OSRDataset `{argument}` is '
                f'outside the {num_classes} classes (0..{num_classes - 1}) '
                f'of {type(dataset).__name__}.')
    if len(set(class_ids)) != len(class_ids):
        raise ValueError(
            f'OSRDataset `{argument}` repeats a class id: {list(class_ids)}.')


@DATASETS.register_module()
class OSRDataset:
    """Selects the known or unknown classes of a dataset for open-set
    recognition.

    The classes come either from a standard protocol (``protocol`` and
    ``split``, see :mod:`gradmix_plugin.datasets.osr_splits`) or from
    explicit ``known_classes`` / ``unknown_classes`` lists of class ids of
    the wrapped dataset. Known classes are relabelled ``0..K-1`` in list
    order (``known_classes.index(c)``); samples of unknown classes get
    ``gt_label = UNKNOWN_LABEL`` (-1), so ``gt_label >= 0`` is the
    "is known" flag.

    The wrapped datasets keep their own pipelines: the wrapper replaces
    ``gt_label`` in the data info before the pipeline runs, so
    ``PackInputs`` packs the new label. ``sample_idx`` becomes the index in
    the wrapper.

    Args:
        dataset (BaseDataset | dict): The dataset, or its config, whose
            samples of the known classes (and, without ``unknown_dataset``,
            of the unknown classes) are selected.
        protocol (str, optional): A protocol name of
            ``gradmix_plugin.datasets.osr_splits.OSR_PROTOCOLS``: 'mnist',
            'svhn', 'cifar10', 'cifar_plus10', 'cifar_plus50',
            'tinyimagenet', 'digits', or the Semantic Shift Benchmark's
            'cub', 'aircraft' and 'scars'. Give either this or
            ``known_classes``. Defaults to None.
        split (int | str): Split index of the protocol, 0 to 4; for the
            SSB protocols the difficulty of the unknown classes, 'easy' or
            'hard' (the known classes are the same). Defaults to 0.
        subset (str): 'known' (samples of the known classes, for training
            and closed-set testing), 'unknown' (samples of the unknown
            classes), 'open' (known then unknown samples, for open-set
            evaluation), 'known_holdout' (a seeded fraction ``holdout`` of
            every known class, e.g. to set an open-set threshold without
            the test set) or 'known_train' (the other known samples: train
            on it to keep the held-out images unseen; opt-in, the recipes
            train on 'known'). Defaults to 'known'.
        known_classes (Sequence[int], optional): Explicit known class ids
            of ``dataset``. Defaults to None.
        unknown_classes (Sequence[int], optional): Explicit unknown class
            ids (of ``unknown_dataset`` when given, else of ``dataset``).
            Defaults to None: all classes of ``unknown_dataset``, or all
            classes of ``dataset`` that are not known.
        unknown_dataset (BaseDataset | dict, optional): A second dataset
            providing the unknown samples, e.g. the CIFAR-100 test set for
            the CIFAR+N protocols (fine-label ids). Required by those
            protocols for the 'unknown' and 'open' subsets. Defaults to
            None.
        max_per_class (int, optional): Keep at most this many samples of
            every class (known and unknown), drawn once with ``seed``: a
            smoke run of a config on real folders in minutes. Defaults to
            None (all samples).
        seed (int): Seed of ``max_per_class`` and of the held-out draw.
            Defaults to 0.
        holdout (float, optional): Fraction of every known class in
            'known_holdout' (at least one sample per class, at least one
            left in 'known_train'), drawn with ``seed`` per class, after
            ``max_per_class``. Only for these two subsets. Defaults to None
            (0.1).
        pipeline (Sequence[dict], optional): The pipeline of the wrapped
            dataset(s) (and of ``unknown_dataset``), given here instead of
            inside them, where mmpretrain's ``ImageClassificationInferencer``
            reads it (``cfg.test_dataloader.dataset.pipeline``). A wrapped
            dataset with a pipeline of its own is refused. Defaults to None
            (each wrapped dataset keeps its own).
        lazy_init (bool): Whether to defer scanning the datasets until the
            wrapper is first used. Defaults to False.
    """

    SUBSETS = ('known', 'unknown', 'open', 'known_holdout', 'known_train')
    #: Subsets drawn from the known samples with ``holdout``.
    HOLDOUT_SUBSETS = ('known_holdout', 'known_train')
    #: The held-out fraction when ``holdout`` is None.
    DEFAULT_HOLDOUT = 0.1

    def __init__(self,
                 dataset: Union[BaseDataset, dict],
                 protocol: Optional[str] = None,
                 split: Union[int, str] = 0,
                 subset: str = 'known',
                 known_classes: Optional[Sequence[int]] = None,
                 unknown_classes: Optional[Sequence[int]] = None,
                 unknown_dataset: Union[BaseDataset, dict, None] = None,
                 max_per_class: Optional[int] = None,
                 seed: int = 0,
                 holdout: Optional[float] = None,
                 pipeline: Optional[Sequence[dict]] = None,
                 lazy_init: bool = False):
        if subset not in self.SUBSETS:
            raise ValueError(f'OSRDataset `subset` {subset!r} is not one of '
                             f'{self.SUBSETS}.')
        self.holdout = self._check_holdout(holdout, subset)
        if (protocol is None) == (known_classes is None):
            raise ValueError(
                'OSRDataset needs exactly one of `protocol` (with `split`) '
                f'and `known_classes`, got protocol={protocol!r} and '
                f'known_classes={known_classes!r}.')
        if protocol is not None:
            if unknown_classes is not None:
                raise ValueError(
                    f'OSRDataset protocol {protocol!r} defines the unknown '
                    'classes; do not also give `unknown_classes`.')
            known_classes, unknown_classes = get_osr_split(protocol, split)
            if (get_osr_protocol(protocol).num_unknown_dataset_classes
                    is not None and unknown_dataset is None
                    and subset != 'known'):
                raise ValueError(
                    f'OSRDataset protocol {protocol!r} takes its unknown '
                    'samples from a second dataset: set `unknown_dataset` '
                    f'(e.g. the CIFAR-100 test set) for subset {subset!r}.')

        if max_per_class is not None and (isinstance(max_per_class, bool)
                                          or not isinstance(max_per_class, int)
                                          or max_per_class < 1):
            raise ValueError('OSRDataset `max_per_class` must be a positive '
                             f'integer or None, got {max_per_class!r}.')
        self.max_per_class = max_per_class
        self.seed = seed
        self.protocol = protocol
        self.split = split
        self.subset = subset
        self.known_classes = list(known_classes)
        self.unknown_classes = (None if unknown_classes is None else
                                list(unknown_classes))
        self.pipeline = None if pipeline is None else list(pipeline)
        self.dataset = self._with_pipeline(dataset, 'dataset')
        self.unknown_dataset = None
        if unknown_dataset is not None:
            self.unknown_dataset = self._with_pipeline(
                unknown_dataset, 'unknown_dataset')

        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @classmethod
    def _check_holdout(cls, holdout: Optional[float],
                       subset: str) -> Optional[float]:
        """The held-out fraction of a holdout subset, None otherwise."""
        if subset not in cls.HOLDOUT_SUBSETS:
            if holdout is not None:
                raise ValueError(
                    f'OSRDataset `holdout`={holdout!r} needs subset '
                    f"'known_holdout' or 'known_train', got {subset!r}; "
                    'remove `holdout` or change the subset.')
            return None
        if holdout is None:
            return cls.DEFAULT_HOLDOUT
        if (isinstance(holdout, bool)
                or not isinstance(holdout, (int, float))
                or not 0 < holdout < 1):
            raise ValueError(
                'OSRDataset `holdout` must be a fraction in (0, 1), got '
                f'{holdout!r}.')
        return float(holdout)

    def _pipeline_config(self, dataset: Union[BaseDataset, dict],
                         argument: str) -> Union[BaseDataset, dict]:
        """A wrapped dataset config with the wrapper's ``pipeline``."""
        if self.pipeline is None or not isinstance(dataset, dict):
            return dataset
        if dataset.get('pipeline'):
            raise ValueError(
                f'OSRDataset has a `pipeline` and so does its `{argument}` '
                f'({dataset.get("type")!r}); give the pipeline once, in '
                "the OSRDataset (where mmpretrain's inferencer finds it).")
        return dict(dataset, pipeline=self.pipeline)

    def _with_pipeline(self, dataset: Union[BaseDataset, dict],
                       argument: str) -> BaseDataset:
        """Build a wrapped dataset (config) with the wrapper's
        ``pipeline``; a built dataset must not have a pipeline of its
        own."""
        if self.pipeline is None:
            return _build_dataset(dataset, argument)
        if isinstance(dataset, dict):
            return _build_dataset(
                self._pipeline_config(dataset, argument), argument)
        dataset = _build_dataset(dataset, argument)
        if dataset.pipeline.transforms:
            raise ValueError(
                f'OSRDataset has a `pipeline` and so does its `{argument}` '
                f'({type(dataset).__name__}); give the pipeline once, in '
                "the OSRDataset (where mmpretrain's inferencer finds it).")
        dataset.pipeline = Compose(self.pipeline)
        return dataset

    def _num_classes(self, dataset: BaseDataset, argument: str,
                     expected: Optional[int]) -> int:
        """Number of classes of ``dataset``, checked against a protocol."""
        classes = dataset.metainfo.get('classes')
        if classes is None:
            raise ValueError(
                f'OSRDataset `{argument}` ({type(dataset).__name__}) has no '
                "`classes` in its metainfo; set `metainfo=dict(classes=...)`"
                ' in its config.')
        if expected is not None and len(classes) != expected:
            raise ValueError(
                f'OSR protocol {self.protocol!r} refers to a dataset with '
                f'{expected} classes, but OSRDataset `{argument}` '
                f'({type(dataset).__name__}) has {len(classes)}.')
        return len(classes)

    def full_init(self) -> None:
        """Scan the wrapped datasets and select the samples."""
        if self._fully_initialized:
            return
        self.dataset.full_init()
        osr_protocol = (None if self.protocol is None else
                        get_osr_protocol(self.protocol))
        num_known_dataset_classes = self._num_classes(
            self.dataset, 'dataset',
            osr_protocol and osr_protocol.num_known_dataset_classes)
        _check_class_ids(self.known_classes, num_known_dataset_classes,
                         'known_classes', self.dataset)

        unknown_source = self.unknown_dataset or self.dataset
        if self.unknown_dataset is not None:
            self.unknown_dataset.full_init()
            num_unknown_dataset_classes = self._num_classes(
                self.unknown_dataset, 'unknown_dataset',
                osr_protocol and osr_protocol.num_unknown_dataset_classes)
            if self.unknown_classes is None:
                self.unknown_classes = list(range(num_unknown_dataset_classes))
            _check_class_ids(self.unknown_classes, num_unknown_dataset_classes,
                             'unknown_classes', self.unknown_dataset)
        elif (osr_protocol is None
              or osr_protocol.num_unknown_dataset_classes is None):
            if self.unknown_classes is None:
                self.unknown_classes = [
                    c for c in range(num_known_dataset_classes)
                    if c not in self.known_classes
                ]
            _check_class_ids(self.unknown_classes, num_known_dataset_classes,
                             'unknown_classes', self.dataset)
            shared = sorted(
                set(self.known_classes) & set(self.unknown_classes))
            if shared:
                raise ValueError(
                    f'OSRDataset classes {shared} are both known and '
                    f'unknown in {type(self.dataset).__name__}.')
        # Else: subset 'known' of a protocol whose unknown classes belong to
        # a second dataset, which is not needed.

        self._sources: List[BaseDataset] = [self.dataset, unknown_source]
        source_ids, ori_indices, labels = [], [], []
        if self.subset in ('known', 'open') + self.HOLDOUT_SUBSETS:
            ori_labels = self.dataset.get_gt_labels()
            selected = self._cap_per_class(
                np.flatnonzero(np.isin(ori_labels, self.known_classes)),
                ori_labels, 0)
            if self.subset in self.HOLDOUT_SUBSETS:
                selected = self._split_holdout(selected, ori_labels)
            relabel = {c: i for i, c in enumerate(self.known_classes)}
            source_ids.append(np.zeros(len(selected), dtype=np.int64))
            ori_indices.append(selected)
            labels.append(
                np.array([relabel[c] for c in ori_labels[selected]],
                         dtype=np.int64))
        if self.subset in ('unknown', 'open'):
            ori_labels = unknown_source.get_gt_labels()
            selected = self._cap_per_class(
                np.flatnonzero(np.isin(ori_labels, self.unknown_classes)),
                ori_labels, 1)
            source_ids.append(np.ones(len(selected), dtype=np.int64))
            ori_indices.append(selected)
            labels.append(np.full(len(selected), UNKNOWN_LABEL, np.int64))
        self._source_ids = np.concatenate(source_ids)
        self._ori_indices = np.concatenate(ori_indices)
        self._labels = np.concatenate(labels)
        if len(self._labels) == 0:
            raise ValueError(
                f'OSRDataset subset {self.subset!r} is empty: no sample of '
                f'the known classes {self.known_classes} or unknown classes '
                f'{self.unknown_classes} in {type(self.dataset).__name__}'
                + ('' if self.unknown_dataset is None else
                   f' / {type(self.unknown_dataset).__name__}') + '.')

        class_names = self.dataset.metainfo['classes']
        self._metainfo = dict(
            classes=tuple(class_names[c] for c in self.known_classes),
            known_class_ids=tuple(self.known_classes),
            unknown_class_ids=tuple(self.unknown_classes),
            protocol=self.protocol,
            split=self.split if self.protocol is not None else None,
            subset=self.subset)
        if self.holdout is not None:
            self._metainfo.update(holdout=self.holdout, holdout_seed=self.seed)
        self._fully_initialized = True

    def _split_holdout(self, selected: np.ndarray,
                       ori_labels: np.ndarray) -> np.ndarray:
        """The held-out (or the remaining) known indices: per class,
        ``round(holdout * n)`` samples (at least 1, at most ``n - 1``)
        drawn with ``seed`` and the class id, kept in dataset order."""
        held_out = []
        for class_id in np.unique(ori_labels[selected]):
            members = selected[ori_labels[selected] == class_id]
            if len(members) < 2:
                raise ValueError(
                    f'OSRDataset subset {self.subset!r}: known class '
                    f'{int(class_id)} has {len(members)} sample, too few '
                    'to hold one out and train on another; use subset '
                    "'known'.")
            count = min(max(int(round(self.holdout * len(members))), 1),
                        len(members) - 1)
            rng = np.random.default_rng((self.seed, 2, int(class_id)))
            held_out.append(rng.choice(members, count, replace=False))
        held_out = np.concatenate(held_out) if held_out else selected[:0]
        keep = np.isin(selected, held_out)
        if self.subset == 'known_train':
            keep = ~keep
        return selected[keep]

    def _cap_per_class(self, selected: np.ndarray, ori_labels: np.ndarray,
                       source: int) -> np.ndarray:
        """At most ``max_per_class`` of the ``selected`` indices per class,
        drawn with ``seed`` (and the source), kept in dataset order."""
        if self.max_per_class is None:
            return selected
        rng = np.random.default_rng((self.seed, source))
        kept = []
        for class_id in np.unique(ori_labels[selected]):
            members = selected[ori_labels[selected] == class_id]
            if len(members) > self.max_per_class:
                members = rng.choice(
                    members, self.max_per_class, replace=False)
            kept.append(members)
        return np.sort(np.concatenate(kept)) if kept else selected

    @property
    @force_full_init
    def metainfo(self) -> dict:
        """Meta information: ``classes`` are the names of the known classes
        in label order; ``known_class_ids`` / ``unknown_class_ids`` are the
        original class ids.

        Returns:
            dict: A copy of the meta information.
        """
        return copy.deepcopy(self._metainfo)

    @property
    def CLASSES(self) -> tuple:
        """Names of the known classes, in label order."""
        return self.metainfo['classes']

    @force_full_init
    def __len__(self) -> int:
        return len(self._labels)

    @force_full_init
    def get_data_info(self, idx: int) -> dict:
        """The data info of a sample, with its open-set ``gt_label``.

        Args:
            idx (int): Index in the wrapper.

        Returns:
            dict: The wrapped dataset's data info, ``gt_label`` replaced
            (known: ``0..K-1``, unknown: -1) and ``sample_idx = idx``.
        """
        idx = range(len(self))[idx]  # IndexError and negative indices.
        source = self._sources[self._source_ids[idx]]
        data_info = source.get_data_info(int(self._ori_indices[idx]))
        data_info['gt_label'] = int(self._labels[idx])
        data_info['sample_idx'] = idx
        return data_info

    @force_full_init
    def __getitem__(self, idx: int) -> dict:
        """Run the wrapped dataset's pipeline on the relabelled data info.

        Args:
            idx (int): Index in the wrapper.

        Returns:
            dict: The pipeline's output.
        """
        data_info = self.get_data_info(idx)
        source = self._sources[self._source_ids[data_info['sample_idx']]]
        try:
            data = source.pipeline(data_info)
        except Exception as err:
            # e.g. cv2 fails on an empty file without naming it.
            err.add_note(
                f'while loading OSRDataset sample {idx} '
                f'(img_path={data_info.get("img_path")!r}) with the '
                f'pipeline of {type(source).__name__}')
            raise
        if data is None:
            raise RuntimeError(
                f'The pipeline of {type(source).__name__} returned None for '
                f'OSRDataset sample {idx}.')
        return data

    @force_full_init
    def get_cat_ids(self, idx: int) -> List[int]:
        """The open-set label of a sample, as a one-item list."""
        return [int(self._labels[idx])]

    @force_full_init
    def get_gt_labels(self) -> np.ndarray:
        """Open-set labels of all samples (known ``0..K-1``, unknown -1)."""
        return self._labels.copy()

    def __repr__(self) -> str:
        lines = [f'Dataset {type(self).__name__}']
        if self.protocol is not None:
            lines.append(f'    Protocol: \t{self.protocol} split {self.split}')
        lines.append(f'    Subset: \t{self.subset}' + (
            '' if self.holdout is None else
            f' (holdout {self.holdout}, seed {self.seed})'))
        lines.append(f'    Known classes: \t{self.known_classes}')
        if self._fully_initialized:
            lines.append(f'    Unknown classes: \t{self.unknown_classes}')
            lines.append(f'    Number of samples: \t{len(self)}')
        else:
            lines.append("    Haven't been initialized")
        lines.append(f'    Wrapped dataset: \t{type(self.dataset).__name__}')
        return '\n'.join(lines)
