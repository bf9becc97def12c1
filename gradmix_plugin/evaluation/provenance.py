"""What an open-set evaluation was computed on, for ``osr_metrics.json``.

:func:`evaluation_provenance` describes the test set (the ID set and every
OOD source with its type, root, subset / indices and size, and the OOD
groups), the bank size, and what every score fitted. It reads built
objects (the runner's test dataset and ``OSRMetric``), so it is called
after the test loop, where the report is written, and its result is
stored under ``provenance['evaluation']``.
"""
from typing import Any, Dict, Optional

#: Dataset attributes recorded when present (``OSRDataset``,
#: ``OpenOODImglist``, file datasets).
DATASET_FIELDS = ('data_root', 'ann_file', 'data_prefix', 'protocol',
                  'split', 'subset', 'benchmark', 'source', 'image_dir')


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if hasattr(value, 'item'):
        return value.item()
    return str(value)


def describe_dataset(dataset: Any) -> Dict[str, Any]:
    """Type, root, subset / split / indices and size of a built dataset,
    and the same of the dataset it wraps (``dataset.dataset``)."""
    record: Dict[str, Any] = dict(type=type(dataset).__name__)
    for field in DATASET_FIELDS:
        value = getattr(dataset, field, None)
        if value not in (None, '', {}):
            record[field] = _jsonable(value)
    indices = getattr(dataset, '_indices', None)
    if indices is not None:
        record['indices'] = _jsonable(indices)
    try:
        record['size'] = len(dataset)
    except TypeError:
        record['size'] = None
    inner = getattr(dataset, 'dataset', None)
    if inner is not None and inner is not dataset and hasattr(
            inner, '__len__'):
        record['wraps'] = describe_dataset(inner)
    return record


def evaluation_provenance(dataset: Any,
                          metric: Optional[Any] = None) -> Dict[str, Any]:
    """The provenance of an open-set evaluation.

    Args:
        dataset: The built test dataset (e.g. ``runner.test_dataloader
            .dataset``); an ``OODDataset`` is described source by source.
        metric (OSRMetric, optional): The evaluated metric, for the bank
            size, the scores and what each fitted. Defaults to None.

    Returns:
        dict: ``test_set`` (``id`` and ``ood_sources`` for an
        ``OODDataset``, each with ``name``, ``type``, ``data_root``,
        subset / split / indices and ``size``; ``ood_groups``), and with a
        metric ``bank_size``, ``val_size``, ``scores`` (``{name: {type,
        args, fitted}}``) and ``feature``.
    """
    if type(dataset).__name__ == 'OODDataset':
        test_set = dict(
            id=describe_dataset(dataset.id_dataset),
            ood_sources=[
                dict(name=name, **describe_dataset(source))
                for name, source in zip(dataset.names, dataset.ood_datasets)
            ],
            ood_groups=_jsonable(dataset.ood_groups or {}))
    else:
        test_set = describe_dataset(dataset)
    record: Dict[str, Any] = dict(test_set=test_set)
    if metric is not None:
        bank_labels = getattr(metric, 'bank_labels', None)
        val = getattr(metric, 'val', None)
        record.update(
            bank_size=None if bank_labels is None else int(bank_labels.size),
            val_size=None if val is None else int(val['labels'].size),
            feature=getattr(metric, 'feature', None),
            scores=_jsonable(
                getattr(metric, 'last_fit_info', None)
                or {name: dict(type=cfg['type'])
                    for name, cfg in metric.score_specs.items()}))
    return record
