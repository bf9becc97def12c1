"""Build an :class:`OSRDetector` from a config and a checkpoint."""
import copy
import time
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.logging import print_log
from mmengine.runner import Runner
from mmengine.utils import ProgressBar
from mmpretrain.apis import get_model
from mmpretrain.registry import DATASETS
from torch.utils.data import Subset

from ..evaluation.scores import build_score
from ..utils.checkpoint import (
    check_checkpoint_fits,
    load_checkpoint_file,
    safe_checkpoint_loading,
)
from ..utils.provenance import (
    check_provenance,
    collect_provenance,
    dataset_provenance,
    recorded_provenance,
)
from .detector import OUTPUT_KEYS, OSRDetector, _plain

#: ``OSRMetric`` options that are a score's parameters in the config.
_EVALUATOR_PARAMS = dict(
    class_knn=dict(class_knn_k='k'),
    knn=dict(knn_k='k'),
    energy=dict(energy_temperature='temperature'),
    mahalanobis=dict(mahalanobis_shrinkage='shrinkage'))


def load_osr_model(cfg: Config,
                   checkpoint: str,
                   device: Optional[str] = None,
                   allow_mismatch: bool = False) -> torch.nn.Module:
    """The config's model with the checkpoint, checked like
    ``tools/test.py`` checks it.

    The checkpoint must record the protocol, split, classes and dataset of
    the config's test set (``check_provenance``) and fit the model exactly
    (``check_checkpoint_fits``); it is read with the plugin's safe loading
    (nothing pickled is executed).

    Args:
        cfg (Config): The merged config (``merge_options`` applied).
        checkpoint (str): The checkpoint.
        device (str, optional): Device of the model. Defaults to None (CPU).
        allow_mismatch (bool): Warn instead of refusing a checkpoint of
            other data. Defaults to False.

    Returns:
        torch.nn.Module: The model in eval mode, as ``get_model`` builds it.
    """
    loaded = load_checkpoint_file(checkpoint, 'cpu')
    check_provenance(
        recorded_provenance(loaded),
        dataset_provenance(cfg, 'test_dataloader'), checkpoint,
        allow_mismatch)
    with safe_checkpoint_loading():
        model = get_model(cfg, pretrained=checkpoint, device=device)
    check_checkpoint_fits(model, checkpoint, loaded)
    return model


def find_bank_dataset(cfg: Config) -> dict:
    """The dataset of the config's ``OSRBankHook``: the known training
    images with the test pipeline.

    Args:
        cfg (Config): The config.

    Returns:
        dict: A copy of the dataset config.
    """
    for hook in cfg.get('custom_hooks', None) or []:
        if hook.get('type') == 'OSRBankHook':
            dataset = hook['dataloader']['dataset']
            if not isinstance(dataset, dict):
                break
            return copy.deepcopy(dict(dataset))
    raise ValueError(
        f'config {cfg.filename} has no OSRBankHook with a dataset config in '
        'custom_hooks: the detector needs its known training images with '
        'the test pipeline (see configs/_base_/datasets/osr_two_view.py)')


def bank_cap(cfg: Config) -> Tuple[Optional[int], int]:
    """``max_samples`` and ``seed`` of the config's ``OSRBankHook``.

    Args:
        cfg (Config): The config.

    Returns:
        tuple[int | None, int]: The cap (None: the whole dataset) and its
        seed.
    """
    for hook in cfg.get('custom_hooks', None) or []:
        if hook.get('type') == 'OSRBankHook':
            return hook.get('max_samples'), hook.get('seed', 0)
    return None, 0


def evaluator_settings(cfg: Config, score: str) -> Tuple[dict, str, int]:
    """A score's parameters, the bank feature and the class-wise kNN ``k``
    of the config's test ``OSRMetric``, so that the detector scores as
    ``tools/test.py`` does.

    Args:
        cfg (Config): The config.
        score (str): The score name.

    Returns:
        tuple[dict, str, int]: Parameters, ``feature``, ``class_knn_k``.
    """
    evaluator = cfg.get('test_evaluator', None) or {}
    metrics = evaluator if isinstance(evaluator, (list, tuple)) else \
        evaluator.get('metrics', [evaluator])
    metric = next((m for m in metrics if m.get('type') == 'OSRMetric'), {})
    params = {
        arg: metric[option]
        for option, arg in _EVALUATOR_PARAMS.get(score, {}).items()
        if option in metric
    }
    class_knn_k = metric.get('class_knn_k', 3)
    for entry in metric.get('scores', ()) or ():
        if isinstance(entry, dict) and entry.get('type') == score:
            params.update({k: v for k, v in entry.items() if k != 'type'})
        if isinstance(entry, dict) and entry.get('type') == 'class_knn':
            class_knn_k = entry.get('k', class_knn_k)
    return params, metric.get('feature', 'embeds'), int(class_knn_k)


def extract_outputs(model: torch.nn.Module,
                    dataset: Any,
                    keys: Optional[Sequence[str]] = None,
                    batch_size: int = 128,
                    num_workers: int = 0,
                    desc: str = '') -> Dict[str, np.ndarray]:
    """Stacked model outputs and labels of a dataset, in dataset order.

    Args:
        model (torch.nn.Module): The model (eval mode).
        dataset (dict | Dataset): The dataset or its config.
        keys (Sequence[str], optional): Outputs to keep (``feats``,
            ``embeds``, ``logits``); all must be there. Defaults to None:
            those of them the model gives.
        batch_size (int): Batch size. Defaults to 128.
        num_workers (int): Loader workers. Defaults to 0.
        desc (str): Printed before the progress bar. Defaults to ''.

    Returns:
        dict[str, np.ndarray]: The outputs and ``labels`` (``gt_label``).
    """
    if isinstance(dataset, dict):
        dataset = DATASETS.build(dataset)
    loader = Runner.build_dataloader(
        dict(
            batch_size=batch_size,
            num_workers=num_workers,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=dataset))
    stacked: Dict[str, list] = {}
    labels = []
    if desc:
        print_log(f'{desc}: {len(dataset)} images', logger='current')
    progress = ProgressBar(len(dataset))
    model.eval()
    with torch.no_grad():
        for batch in loader:
            samples = model.test_step(batch)
            for sample in samples:
                if keys is None:
                    keys = [k for k in OUTPUT_KEYS if k in sample]
                for key in keys:
                    if key not in sample:
                        raise ValueError(
                            f'{type(model).__name__} gives no {key!r} '
                            'output, which the detector needs')
                    stacked.setdefault(key, []).append(
                        sample.get(key).detach().cpu().float().numpy()
                        .reshape(-1))
                labels.append(int(sample.gt_label.reshape(-1)[0]))
            progress.update(len(samples))
    progress.file.write('\n')
    outputs = {k: np.stack(v) for k, v in stacked.items()}
    outputs['labels'] = np.asarray(labels, np.int64)
    return outputs


def _wrapped_dataset_record(dataset: dict) -> dict:
    """Type, root, prefix and split of the dataset an OSRDataset wraps."""
    inner = dataset.get('dataset', dataset)
    if not isinstance(inner, dict):
        return dict(type=type(inner).__name__,
                    data_root=getattr(inner, 'data_root', None))
    return {
        key: _plain(inner.get(key))
        for key in ('type', 'data_root', 'data_prefix', 'split')
        if inner.get(key) is not None
    }


def build_detector(cfg: Config,
                   checkpoint: str,
                   score: str = 'class_knn',
                   score_options: Optional[dict] = None,
                   tpr: float = 0.95,
                   threshold: Optional[float] = None,
                   holdout: Optional[float] = 0.1,
                   seed: int = 0,
                   feature: Optional[str] = None,
                   batch_size: int = 128,
                   device: Optional[str] = None,
                   allow_mismatch: bool = False,
                   model: Optional[torch.nn.Module] = None) -> OSRDetector:
    """Build the detector of a checkpoint.

    The bank is the dataset of the config's ``OSRBankHook`` (known
    training images, test pipeline). With ``holdout`` a seeded fraction of
    every known class is held out of it (``OSRDataset`` subsets
    ``'known_train'`` for the bank and ``'known_holdout'`` for the
    threshold; a plain dataset, all of whose classes are known, is viewed
    through an ``OSRDataset`` of all its classes); with ``holdout=None``
    the bank is all known training images and the threshold is set on
    them (optimistic, with a warning). The hook's ``max_samples`` cap
    applies as in ``OSRBankHook`` (same subset of the bank).

    Args:
        cfg (Config): The merged config.
        checkpoint (str): The checkpoint.
        score (str): A registered score. Defaults to ``'class_knn'``.
        score_options (dict, optional): Its parameters; those not given
            come from the config's ``OSRMetric`` (``class_knn_k``, ...).
            Defaults to None.
        tpr (float): Target true-positive rate. Defaults to 0.95.
        threshold (float, optional): A given threshold instead.
            Defaults to None.
        holdout (float, optional): Held-out fraction per known class, or
            None. Defaults to 0.1.
        seed (int): Seed of the held-out draw. Defaults to 0.
        feature (str, optional): Bank vectors; defaults to the
            ``OSRMetric``'s ``feature``.
        batch_size (int): Batch size. Defaults to 128.
        device (str, optional): Device. Defaults to None (CPU).
        allow_mismatch (bool): See :func:`load_osr_model`.
            Defaults to False.
        model (torch.nn.Module, optional): The model already loaded from
            ``checkpoint``. Defaults to None.

    Returns:
        OSRDetector: The detector, ``provenance`` filled.
    """
    if threshold is None and not 0 < tpr <= 1:  # before the extraction
        raise ValueError(f'the target TPR must lie in (0, 1], got {tpr!r}')
    params, config_feature, class_knn_k = evaluator_settings(cfg, score)
    params.update(score_options or {})
    if score == 'class_knn':
        class_knn_k = params.get('k', class_knn_k)
    feature = feature or config_feature
    score_cfg = dict(type=score, **params)
    build_score(score_cfg)  # unknown names and bad parameters fail now
    if model is None:
        model = load_osr_model(cfg, checkpoint, device, allow_mismatch)
    bank_dataset = find_bank_dataset(cfg)
    if bank_dataset.get('type') != 'OSRDataset' and holdout is not None:
        # A plain dataset (every class known): the held-out split of an
        # OSRDataset view of all its classes, labels unchanged.
        plain = DATASETS.build(bank_dataset)
        classes = plain.metainfo.get('classes')
        if not classes:
            raise ValueError(
                'the OSRBankHook dataset '
                f'({bank_dataset.get("type")!r}) has no classes in its '
                'metainfo, so no held-out split can be drawn; set '
                'metainfo=dict(classes=...) or build with holdout=None')
        bank_dataset = dict(
            type='OSRDataset',
            dataset=plain,
            known_classes=list(range(len(classes))))
    val_dataset = None
    if holdout is not None:
        bank_dataset.update(subset='known_train', holdout=holdout, seed=seed)
        val_dataset = dict(bank_dataset, subset='known_holdout')
    start = time.perf_counter()
    bank_built = DATASETS.build(bank_dataset)
    classes = bank_built.metainfo['classes']
    max_samples, cap_seed = bank_cap(cfg)
    if max_samples is not None and max_samples < len(bank_built):
        # The subset OSRBankHook draws, so that tools/test.py and the
        # detector score against the same bank.
        indices = np.sort(
            np.random.default_rng(cap_seed).choice(
                len(bank_built), max_samples, replace=False))
        bank_built = Subset(bank_built, indices.tolist())
    train = extract_outputs(model, bank_built, None, batch_size,
                            desc='bank')
    keys = OSRDetector.required_keys(score_cfg, feature, 'logits' in train)
    train = {k: v for k, v in train.items() if k in keys + ('labels', )}
    val = None if val_dataset is None else extract_outputs(
        model, val_dataset, keys, batch_size, desc='held-out known')
    fc_weight = fc_bias = None
    if 'fc' in build_score(score_cfg).needs:
        fc_weight = model.head.fc.weight.detach().cpu().numpy()
        fc_bias = model.head.fc.bias.detach().cpu().numpy()

    provenance = collect_provenance(cfg, 'test_dataloader', checkpoint)
    provenance.update(
        bank=dict(
            dataset=_wrapped_dataset_record(bank_dataset),
            subset=bank_dataset.get('subset', 'known'),
            holdout=holdout,
            holdout_seed=seed if holdout is not None else None,
            size=int(train['labels'].size),
            max_samples=max_samples),
        threshold_images=dict(
            subset='known_holdout' if val is not None else 'known_train'
            if holdout is not None else bank_dataset.get('subset', 'known'),
            size=int((val or train)['labels'].size)),
        score=_plain(score_cfg),
        feature=feature)
    detector = OSRDetector.from_outputs(
        score_cfg,
        train,
        classes,
        val=val,
        feature=feature,
        tpr=tpr,
        threshold=threshold,
        fc_weight=fc_weight,
        fc_bias=fc_bias,
        class_knn_k=class_knn_k,
        provenance=provenance)
    detector.provenance['build_seconds'] = round(
        time.perf_counter() - start, 3)
    return detector
