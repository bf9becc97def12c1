"""An in-distribution test set and named OOD sets, for OOD detection."""
import copy
import hashlib
import os.path as osp
import re
from typing import List, Mapping, Optional, Sequence, Set, Union

import numpy as np
from mmengine.dataset import force_full_init
from mmpretrain.datasets import BaseDataset
from mmpretrain.registry import DATASETS

from .osr import UNKNOWN_LABEL, OSRDataset, _build_dataset

#: Accepted names of OOD sources and groups (they become metric keys).
NAME_PATTERN = r'[A-Za-z0-9][A-Za-z0-9_.-]*'


def _check_name(name, kind: str) -> str:
    if not isinstance(name, str) or not re.fullmatch(NAME_PATTERN, name):
        raise ValueError(
            f'OODDataset {kind} name {name!r} is not accepted: use letters, '
            'digits, _ . - (starting with a letter or digit), e.g. '
            "'tin' or 'near'")
    return name


def _fingerprints(dataset) -> Optional[Set[str]]:
    """What identifies the samples: the real paths of their images, or
    hashes of in-memory images (``img``); None if neither is there."""
    prints = set()
    for idx in range(len(dataset)):
        info = dataset.get_data_info(idx)
        if info.get('img_path') is not None:
            prints.add(osp.realpath(info['img_path']))
        elif isinstance(info.get('img'), np.ndarray):
            prints.add(hashlib.sha1(info['img'].tobytes()).hexdigest())
        else:
            return None
    return prints


def _type_name(dataset) -> str:
    """The ``type`` of a dataset config, or the class of a built one."""
    if isinstance(dataset, dict):
        return repr(dataset.get('type'))
    return type(dataset).__name__


@DATASETS.register_module()
class OODDataset:
    """An in-distribution (ID) test set followed by named OOD datasets.

    Concatenates ``id_dataset`` (labels kept, all must be known classes
    ``>= 0``) and the datasets of ``ood_datasets`` in list order. Every OOD
    sample gets ``gt_label = -1`` (``UNKNOWN_LABEL``), whatever label its
    own dataset gives it (e.g. a TinyImageNet class), and the name of its
    source: ``ood_source`` in its data info and in the metainfo of the
    packed ``DataSample``, which reaches ``OSRMetric.process``, so that the
    metric reports every OOD source and group separately. The wrapped
    datasets keep their own pipelines; the wrapper sets ``gt_label`` and
    ``ood_source`` on the ``data_samples`` the pipeline packs. The metainfo
    is the ID dataset's, plus ``ood_sources`` (the names, in order) and
    ``ood_groups``.

    Refused when the wrapper is built, with the offending value: an ID set
    with negative labels, a source or group name that is not accepted
    (:data:`NAME_PATTERN`), a repeated source name, an empty source, a
    group naming an unknown source, an open-set dataset (``OSRDataset``)
    as a source that contains known-class samples (use its
    ``subset='unknown'``), and a source sharing images with the ID set
    (same image files, or identical in-memory images).

    Args:
        id_dataset (dict | dataset): The ID test set or its config: any
            mmpretrain dataset, e.g. ``CustomDataset`` or the known subset
            of an OSR split, ``dict(type='OSRDataset', subset='known',
            ...)``.
        ood_datasets (Sequence[dict]): The OOD sets, each
            ``dict(name='tin', dataset=<dataset or config>)``.
        ood_groups (Mapping[str, Sequence[str]], optional): Named groups of
            sources, reported as the mean over their sources, e.g.
            ``dict(near=['cifar100', 'tin'], far=['mnist', 'svhn'])``.
            Defaults to None.
        pipeline (Sequence[dict], optional): The test pipeline of the ID
            set, handed to the ``id_dataset`` config; here mmpretrain's
            inferencers find it (``cfg.test_dataloader.dataset.pipeline``).
            An ``id_dataset`` with a pipeline of its own is refused. The
            OOD sets keep their own pipelines. Defaults to None.
        lazy_init (bool): Whether to defer loading and checking the datasets
            until first use. Defaults to False.
    """

    def __init__(self,
                 id_dataset: Union[dict, object],
                 ood_datasets: Sequence[dict],
                 ood_groups: Optional[Mapping[str, Sequence[str]]] = None,
                 pipeline: Optional[Sequence[dict]] = None,
                 lazy_init: bool = False):
        if pipeline is not None:
            if not isinstance(id_dataset, dict) or id_dataset.get(
                    'pipeline'):
                raise ValueError(
                    'OODDataset has a `pipeline` and so does its '
                    f'`id_dataset` ({_type_name(id_dataset)}); give the ID '
                    'pipeline once, in the OODDataset (where mmpretrain '
                    'reads it)')
            id_dataset = dict(id_dataset, pipeline=list(pipeline))
        if isinstance(ood_datasets, dict) or not ood_datasets:
            raise ValueError(
                'OODDataset `ood_datasets` must be a non-empty list of '
                f'dict(name=..., dataset=...), got {ood_datasets!r}')
        names = []
        for entry in ood_datasets:
            if not isinstance(entry, dict) or set(entry) != {'name',
                                                               'dataset'}:
                raise ValueError(
                    'every entry of OODDataset `ood_datasets` must be '
                    f'dict(name=..., dataset=...), got {entry!r}')
            names.append(_check_name(entry['name'], 'source'))
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(
                f'OODDataset source names {repeated} are repeated in '
                f'{names}; give every OOD set its own name')
        groups = {}
        for group, members in (ood_groups or {}).items():
            _check_name(group, 'group')
            if isinstance(members, str) or not members:
                raise ValueError(
                    f'OODDataset group {group!r} must be a non-empty list of '
                    f'source names, got {members!r}')
            unknown = [m for m in members if m not in names]
            if unknown:
                raise ValueError(
                    f'OODDataset group {group!r} names {unknown}, which are '
                    f'not sources; the sources are {names}')
            groups[group] = list(members)
        self.names = names
        self.ood_groups = groups
        self.id_dataset = self._build(id_dataset, 'id_dataset')
        self.ood_datasets = [
            self._build(entry['dataset'], f'ood_datasets.{i}.dataset')
            for i, entry in enumerate(ood_datasets)
        ]
        self._fully_initialized = False
        if not lazy_init:
            self.full_init()

    @staticmethod
    def _build(dataset, argument: str):
        return _build_dataset(dataset, argument, 'OODDataset',
                              (BaseDataset, OSRDataset))

    def full_init(self) -> None:
        """Load the datasets and check them."""
        if self._fully_initialized:
            return
        for dataset in [self.id_dataset] + self.ood_datasets:
            if hasattr(dataset, 'full_init'):
                dataset.full_init()
        if len(self.id_dataset) == 0:
            raise ValueError('OODDataset `id_dataset` is empty')
        id_labels = np.asarray(self.id_dataset.get_gt_labels(), np.int64)
        if (id_labels < 0).any():
            raise ValueError(
                f'OODDataset `id_dataset` ({type(self.id_dataset).__name__}) '
                f'has {int((id_labels < 0).sum())} samples with a negative '
                'gt_label: the ID set must hold known classes only (e.g. '
                "OSRDataset subset='known'); give the unknown classes as an "
                "OOD source (OSRDataset subset='unknown')")
        id_prints = _fingerprints(self.id_dataset)
        for name, dataset in zip(self.names, self.ood_datasets):
            self._check_source(name, dataset, id_prints)

        sizes = [len(self.id_dataset)] + [len(d) for d in self.ood_datasets]
        self._offsets = np.cumsum([0] + sizes)
        self._labels = np.concatenate(
            [id_labels,
             np.full(self._offsets[-1] - sizes[0], UNKNOWN_LABEL, np.int64)])
        self._metainfo = dict(
            copy.deepcopy(self.id_dataset.metainfo),
            ood_sources=tuple(self.names),
            ood_groups=copy.deepcopy(self.ood_groups))
        self._fully_initialized = True

    def _check_source(self, name: str, dataset,
                      id_prints: Optional[Set[str]]) -> None:
        kind = type(dataset).__name__
        if len(dataset) == 0:
            raise ValueError(f'OODDataset source {name!r} ({kind}) is empty')
        if 'known_class_ids' in dataset.metainfo:  # an open-set labelling
            known = int((np.asarray(dataset.get_gt_labels()) >= 0).sum())
            if known:
                raise ValueError(
                    f'OODDataset source {name!r} ({kind}, subset '
                    f'{dataset.metainfo.get("subset")!r}) has {known} '
                    'samples of known classes (gt_label >= 0); use '
                    "subset='unknown' for an OOD source")
        if id_prints is None:
            return
        shared = (_fingerprints(dataset) or set()) & id_prints
        if shared:
            raise ValueError(
                f'OODDataset source {name!r} ({kind}) shares {len(shared)} '
                f'of its {len(dataset)} images with `id_dataset` (e.g. '
                f'{sorted(shared)[0]!r}): an OOD source must not contain the '
                'in-distribution data')

    @property
    @force_full_init
    def metainfo(self) -> dict:
        """The ID dataset's metainfo with ``ood_sources`` and
        ``ood_groups``.

        Returns:
            dict: A copy of the meta information.
        """
        return copy.deepcopy(self._metainfo)

    @force_full_init
    def __len__(self) -> int:
        return int(self._offsets[-1])

    def _locate(self, idx: int):
        """``(source index, dataset, index in it)``; source 0 is the ID
        set."""
        idx = range(len(self))[idx]  # IndexError and negative indices.
        part = int(np.searchsorted(self._offsets, idx, side='right')) - 1
        datasets = [self.id_dataset] + self.ood_datasets
        return part, datasets[part], idx - int(self._offsets[part])

    @force_full_init
    def get_data_info(self, idx: int) -> dict:
        """The data info of a sample: ``gt_label`` -1 and ``ood_source`` for
        OOD samples, and ``sample_idx = idx``.

        Args:
            idx (int): Index in the wrapper.

        Returns:
            dict: The data info.
        """
        part, dataset, local = self._locate(idx)
        data_info = dataset.get_data_info(local)
        if part:
            data_info.update(
                gt_label=UNKNOWN_LABEL, ood_source=self.names[part - 1])
        data_info['sample_idx'] = range(len(self))[idx]
        return data_info

    @force_full_init
    def __getitem__(self, idx: int) -> dict:
        """The wrapped dataset's pipeline output; OOD samples get
        ``gt_label`` -1 and ``ood_source`` on their ``data_samples``.

        Args:
            idx (int): Index in the wrapper.

        Returns:
            dict: The pipeline's output.
        """
        part, dataset, local = self._locate(idx)
        data = dataset[local]
        if not part:
            return data
        sample = data.get('data_samples') if isinstance(data, dict) else None
        if sample is None or not hasattr(sample, 'set_metainfo'):
            raise TypeError(
                f'the pipeline of OODDataset source {self.names[part - 1]!r} '
                f'({type(dataset).__name__}) must end with PackInputs (a '
                'dict with data_samples), got '
                f'{type(data).__name__}')
        sample.set_gt_label(UNKNOWN_LABEL)
        sample.set_metainfo(dict(ood_source=self.names[part - 1]))
        return data

    @force_full_init
    def get_cat_ids(self, idx: int) -> List[int]:
        """The label of a sample (-1 for OOD samples), as a one-item
        list."""
        return [int(self._labels[idx])]

    @force_full_init
    def get_gt_labels(self) -> np.ndarray:
        """Labels of all samples: the ID labels, then -1 for OOD."""
        return self._labels.copy()

    def __repr__(self) -> str:
        lines = [f'Dataset {type(self).__name__}',
                 f'    ID dataset: \t{type(self.id_dataset).__name__}']
        if self._fully_initialized:
            sizes = np.diff(self._offsets).tolist()
            lines += [f'    {name}: \t{size} samples'
                      for name, size in zip(['ID'] + self.names, sizes)]
        else:
            lines.append("    Haven't been initialized")
        if self.ood_groups:
            lines.append(f'    Groups: \t{self.ood_groups}')
        return '\n'.join(lines)
