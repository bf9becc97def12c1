import time
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmengine.dist import (
    all_gather,
    broadcast_object_list,
    get_world_size,
    is_main_process,
)
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.runner import Runner
from mmengine.utils import ProgressBar
from mmpretrain.registry import DATASETS, HOOKS
from torch.utils.data import DataLoader, Subset

from ...evaluation.metrics import OSRMetric

BANK_KEYS = ('feats', 'embeds')
#: Bank rows per rank and ``all_gather`` call.
GATHER_ROWS = 65536


@HOOKS.register_module()
class OSRBankHook(Hook):
    """Build the kNN training bank of ``OSRMetric`` before val / test.

    Before every validation and test epoch the hook runs ``model.test_step``
    over ``dataloader`` (the known-class training set with the test
    pipeline, not shuffled) in eval mode without gradients, keeps the
    ``feats`` and / or ``embeds`` of every sample with its ``gt_label``,
    gathers them from all ranks in dataset order (every rank gets the full
    bank) and calls :meth:`OSRMetric.set_bank` on every ``OSRMetric`` of
    the evaluator. The bank is cached: it is rebuilt only when the model
    weights changed (a fingerprint of the state dict on rank 0), so
    validating and testing the same checkpoint computes it once. The loader
    is built in ``before_run``, so a wrong dataset type or a missing data
    root fails before the first training iteration, not at the first
    validation; a progress bar (rank 0) shows the bank being built.

    Gathering: every rank writes its outputs into one array per key, in the
    order of its sampler, and the arrays are exchanged with ``all_gather``
    in blocks of :data:`GATHER_ROWS` rows per rank, each block written
    straight into the full bank, so that a process holds its own share,
    the bank and two gathered blocks per rank (a million 128-d float32
    vectors: 0.5 GiB, instead of several pickled copies). Rank ``r``'s ``i``-th
    sample is the ``(i * world_size + r)``-th result and the first
    ``len(dataset)`` results are kept, which drops the samples that
    ``DefaultSampler`` repeats to pad the ranks exactly as mmengine's
    ``collect_results`` does; the sampler's indices then put every row at
    its place in the dataset (also with a shuffling sampler).

    The priority is ``'LOW'`` so that the hook runs after ``'NORMAL'`` hooks
    such as ``EMAHook``, which swaps in the averaged weights in
    ``before_val_epoch``; the bank is then built with the evaluated weights.

    Args:
        dataloader (dict | DataLoader): The bank loader, or its config for
            ``Runner.build_dataloader``, e.g. ``dict(batch_size=256,
            num_workers=4, dataset=..., sampler=dict(type='DefaultSampler',
            shuffle=False))``.
        max_samples (int, optional): Use a random subset of this many
            training samples, drawn once with ``seed`` (the same on every
            rank). Defaults to None (all samples).
        seed (int): Seed of the subset. Defaults to 0.

    Examples:
        >>> custom_hooks = [
        ...     dict(type='OSRBankHook',
        ...          dataloader=dict(
        ...              batch_size=256, num_workers=4,
        ...              dataset=dict(type='OSRDataset', subset='known',
        ...                           pipeline=test_pipeline, ...),
        ...              sampler=dict(type='DefaultSampler', shuffle=False)))
        ... ]
    """

    priority = 'LOW'

    def __init__(self,
                 dataloader: Union[dict, DataLoader],
                 max_samples: Optional[int] = None,
                 seed: int = 0) -> None:
        if max_samples is not None and max_samples < 1:
            raise ValueError(
                f'max_samples must be a positive integer, got {max_samples}')
        self.dataloader = dataloader
        self.max_samples = max_samples
        self.seed = seed
        self._loader: Optional[DataLoader] = None
        self._cache_key: Optional[Tuple[float, ...]] = None
        self._bank: Optional[Dict[str, np.ndarray]] = None
        self._bank_labels: Optional[np.ndarray] = None

    def before_run(self, runner) -> None:
        """Build the bank loader, so that its errors come before training.
        """
        from ..runner import warn_if_plain_runner
        warn_if_plain_runner(runner, type(self).__name__)
        if self._loader is None:
            self._loader = self._build_loader(runner)

    def before_val_epoch(self, runner) -> None:
        """Set the bank on the OSR metrics of the validation evaluator."""
        self._update_metrics(runner, runner.val_evaluator.metrics)

    def before_test_epoch(self, runner) -> None:
        """Set the bank on the OSR metrics of the test evaluator."""
        self._update_metrics(runner, runner.test_evaluator.metrics)

    def _update_metrics(self, runner, metrics: Sequence) -> None:
        osr_metrics = [m for m in metrics if isinstance(m, OSRMetric)]
        if not osr_metrics:
            runner.logger.warning(
                'OSRBankHook: the evaluator has no OSRMetric, so no bank is '
                'built')
            return
        if self._loader is None:
            self._loader = self._build_loader(runner)
        # Rank 0 decides, so that all ranks take part in the gathering
        # even if buffers such as BN statistics differ between ranks.
        shared_key = [self._weights_fingerprint(runner.model)]
        broadcast_object_list(shared_key)
        key = shared_key[0]
        if key != self._cache_key:
            self._bank, self._bank_labels = self._build_bank(runner)
            self._cache_key = key
        else:
            runner.logger.info(
                'OSRBankHook: weights unchanged, reusing the bank of '
                f'{self._bank_labels.size} samples')
        for metric in osr_metrics:
            metric.set_bank(self._bank, self._bank_labels)
            # The final linear layer, for the scores that need it.
            metric.set_model(runner.model)

    @staticmethod
    def _weights_fingerprint(model: torch.nn.Module) -> Tuple[float, ...]:
        """Sum and absolute sum of every floating-point state tensor."""
        if is_model_wrapper(model):
            model = model.module
        with torch.no_grad():
            sums = [
                torch.stack((t.double().sum(), t.double().abs().sum()))
                for t in model.state_dict().values() if t.is_floating_point()
            ]
        if not sums:
            return ()
        return tuple(torch.cat(sums).cpu().tolist())

    def _build_loader(self, runner) -> DataLoader:
        if isinstance(self.dataloader, DataLoader):
            if self.max_samples is not None:
                raise ValueError(
                    'max_samples needs the dataloader as a config dict')
            return self.dataloader
        loader_cfg = dict(self.dataloader)
        dataset = loader_cfg['dataset']
        if isinstance(dataset, dict):
            dataset = DATASETS.build(dataset)
        if self.max_samples is not None and self.max_samples < len(dataset):
            indices = np.sort(
                np.random.default_rng(self.seed).choice(
                    len(dataset), self.max_samples, replace=False))
            indices = indices.tolist()
            dataset = (
                dataset.get_subset(indices) if hasattr(
                    dataset, 'get_subset') else Subset(dataset, indices))
        loader_cfg['dataset'] = dataset
        return Runner.build_dataloader(loader_cfg, seed=runner.seed)

    def _build_bank(self, runner) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
        start = time.perf_counter()
        loader = self._loader
        model = runner.model
        was_training = model.training
        model.eval()
        # The dataset index of every output of this rank, in order.
        indices = np.array(
            [i for batch in loader.batch_sampler for i in batch],
            dtype=np.int64)
        labels = np.empty(indices.size, dtype=np.int64)
        local: Dict[str, np.ndarray] = {}
        row = 0
        progress = ProgressBar(len(loader.dataset)) \
            if is_main_process() else None
        with torch.no_grad():
            for data_batch in loader:
                outputs = model.test_step(data_batch)
                if progress is not None:
                    # The ranks share the work: rank 0 counts for all.
                    step = min(
                        len(outputs) * get_world_size(),
                        progress.task_num - progress.completed)
                    if step > 0:
                        progress.update(step)
                for data_sample in outputs:
                    if row == indices.size:
                        raise ValueError(
                            'OSRBankHook: the bank loader gives more '
                            f'samples than its batch sampler\'s '
                            f'{indices.size} indices')
                    if not local:
                        local = {
                            k: np.empty(
                                (indices.size, data_sample.get(k).numel()),
                                data_sample.get(k).cpu().numpy().dtype)
                            for k in BANK_KEYS if k in data_sample
                        }
                    labels[row] = int(data_sample.gt_label.reshape(-1)[0])
                    for key, vectors in local.items():
                        vectors[row] = data_sample.get(
                            key).detach().cpu().numpy().reshape(-1)
                    row += 1
        model.train(was_training)
        if progress is not None:
            progress.file.write('\n')
        if not local:
            raise ValueError(
                'OSRBankHook: the model outputs have neither feats nor '
                'embeds; use a head or classifier that sets them (e.g. '
                'OSRLinearClsHead)')
        bank, labels = self._gather(local, indices, labels,
                                    len(loader.dataset))
        dims = ', '.join(f'{k}: {v.shape[1]}' for k, v in bank.items())
        runner.logger.info(
            f'OSRBankHook: built a bank of {labels.size} samples ({dims}) in '
            f'{time.perf_counter() - start:.1f} s')
        return bank, labels

    @staticmethod
    def _gather(local: Dict[str, np.ndarray], indices: np.ndarray,
                labels: np.ndarray,
                size: int) -> Tuple[Dict[str, np.ndarray], np.ndarray]:
        """The bank of all ranks in dataset order (see the class notes)."""
        world_size = get_world_size()
        counts = [
            int(c) for c in all_gather(torch.tensor([indices.size]))
        ]
        longest = max(counts)
        meta = np.full((longest, 2), -1, dtype=np.int64)
        meta[:indices.size, 0] = indices
        meta[:indices.size, 1] = labels
        # Rows in result order: row i * world_size + r is rank r's i-th.
        results = np.stack([t.numpy() for t in all_gather(
            torch.from_numpy(meta))], axis=1).reshape(-1, 2)
        kept = np.flatnonzero(results[:, 0] >= 0)[:size]
        places = results[kept, 0]
        if (kept.size != size or np.bincount(
                places, minlength=size).max(initial=0) > 1
                or places.max(initial=-1) >= size):
            raise ValueError(
                f'OSRBankHook: the bank samplers of the {world_size} ranks '
                f'give {counts} samples that do not cover the {size} '
                'dataset samples once each; use DefaultSampler')
        bank_labels = np.empty(size, dtype=np.int64)
        bank_labels[places] = results[kept, 1]
        if world_size == 1 and np.array_equal(places, np.arange(size)):
            return local, bank_labels
        bank = {}
        for key, vectors in local.items():
            bank[key] = np.empty((size, vectors.shape[1]), vectors.dtype)
            for first in range(0, longest, GATHER_ROWS):
                rows = min(GATHER_ROWS, longest - first)
                block = np.zeros((rows, vectors.shape[1]), vectors.dtype)
                part = vectors[first:first + rows]
                block[:part.shape[0]] = part
                gathered = np.stack([t.numpy() for t in all_gather(
                    torch.from_numpy(block))], axis=1).reshape(
                        -1, vectors.shape[1])
                lo, hi = np.searchsorted(
                    kept, [first * world_size, (first + rows) * world_size])
                bank[key][places[lo:hi]] = gathered[kept[lo:hi] -
                                                    first * world_size]
        return bank, bank_labels
