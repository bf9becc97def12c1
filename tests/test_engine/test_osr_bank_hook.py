import os.path as osp
import pickle
from types import SimpleNamespace
from unittest.mock import MagicMock

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.evaluator import Evaluator
from mmengine.logging import MMLogger
from mmengine.runner import Runner
from mmpretrain.registry import HOOKS, MODELS
from mmpretrain.structures import DataSample
from torch.utils.data import Dataset

import gradmix_plugin  # noqa: F401
from gradmix_plugin.engine.hooks import OSRBankHook
from gradmix_plugin.evaluation import OSRMetric
from gradmix_plugin.utils import free_port

NUM_CLASSES = 3


class ToyImages(Dataset):
    """Tiny images whose colour depends on the class (-1 = unknown)."""

    def __init__(self, labels, seed):
        generator = torch.Generator().manual_seed(seed)
        self.labels = list(labels)
        colour = torch.tensor([[40, 120, 200], [200, 40, 120],
                               [120, 200, 40], [128, 128, 128]])
        self.images = [
            (colour[label].view(3, 1, 1) +
             torch.randint(-30, 30, (3, 16, 16), generator=generator)).clamp(
                 0, 255).to(torch.uint8) for label in self.labels
        ]

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return dict(
            inputs=self.images[index],
            data_samples=DataSample().set_gt_label(self.labels[index]))


def known_set(size=13):
    return ToyImages([i % NUM_CLASSES for i in range(size)], seed=1)


def open_set():
    return ToyImages([0, 1, 2, -1, 0, 1, -1, 2, 0, -1, 1, 2], seed=2)


def loader_cfg(dataset, batch_size=2):
    return dict(
        dataset=dataset,
        batch_size=batch_size,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False),
        collate_fn=dict(type='pseudo_collate'))


def classifier_cfg():
    return dict(
        type='ImageClassifier',
        backbone=dict(
            type='ResNet_CIFAR', depth=18, stem_channels=8, base_channels=8),
        neck=dict(type='GlobalAveragePooling'),
        head=dict(
            type='OSRLinearClsHead', num_classes=NUM_CLASSES,
            in_channels=64),
        data_preprocessor=dict(
            type='ClsDataPreprocessor', mean=[127.5] * 3, std=[64.0] * 3))


def tiny_classifier():
    torch.manual_seed(0)
    return MODELS.build(classifier_cfg()).eval()


def direct_features(model, dataset):
    """Per-sample feats and labels from one test_step per sample."""
    feats, labels = [], []
    with torch.no_grad():
        for i in range(len(dataset)):
            item = dataset[i]
            batch = dict(
                inputs=[item['inputs']], data_samples=[item['data_samples']])
            sample = model.test_step(batch)[0]
            feats.append(sample.feats.numpy())
            labels.append(sample.gt_label.item())
    return np.stack(feats), np.array(labels)


def metric_cfg():
    return dict(
        type='OSRMetric',
        scores=('class_knn', 'knn', 'mls'),
        feature='feats',
        class_knn_k=2,
        knn_k=3)


def mock_runner(model, metrics, test_metrics=()):
    return SimpleNamespace(
        model=model,
        val_evaluator=SimpleNamespace(metrics=list(metrics)),
        test_evaluator=SimpleNamespace(metrics=list(test_metrics)),
        logger=MMLogger.get_instance('test_osr_bank_hook'),
        seed=0)


def test_bank_hook_in_a_runner(tmp_path, monkeypatch):
    runner = Runner(
        model=classifier_cfg(),
        work_dir=str(tmp_path),
        val_dataloader=loader_cfg(open_set(), batch_size=4),
        val_cfg=dict(),
        val_evaluator=metric_cfg(),
        custom_hooks=[
            dict(type='OSRBankHook', dataloader=loader_cfg(known_set()))
        ],
        default_scope='mmpretrain',
        log_level='WARNING')
    hook = next(h for h in runner.hooks if isinstance(h, OSRBankHook))
    assert hook.priority == 'LOW'
    builds = []
    build_bank = hook._build_bank
    monkeypatch.setattr(hook, '_build_bank',
                        lambda r: builds.append(1) or build_bank(r))

    metrics = runner.val()
    assert len(builds) == 1
    assert {'osr/class_knn/auroc', 'osr/knn/oscr', 'osr/mls/auroc',
            'osr/accuracy'} <= set(metrics)
    metric = runner.val_evaluator.metrics[0]
    feats, labels = direct_features(runner.model, known_set())
    np.testing.assert_allclose(metric.bank['feats'], feats, atol=1e-5)
    np.testing.assert_array_equal(metric.bank_labels, labels)
    assert set(metric.bank) == {'feats'}

    # Same weights: the cached bank is reused; new weights: rebuilt.
    assert runner.val() == pytest.approx(metrics)
    assert len(builds) == 1
    with torch.no_grad():
        runner.model.backbone.conv1.weight.mul_(1.5)
    runner.val()
    assert len(builds) == 2
    feats, _ = direct_features(runner.model, known_set())
    np.testing.assert_allclose(metric.bank['feats'], feats, atol=1e-5)


def test_bank_hook_subsampling_mode_and_test_evaluator():
    model = tiny_classifier().train()
    dataset = known_set(size=12)
    all_feats, all_labels = direct_features(model.eval(), dataset)
    model.train()

    banks = []
    for seed in (1, 1, 2):
        metric = OSRMetric()
        hook = HOOKS.build(
            dict(
                type='OSRBankHook',
                dataloader=loader_cfg(dataset),
                max_samples=5,
                seed=seed))
        hook.before_test_epoch(mock_runner(model, [], [metric]))
        assert model.training  # training mode restored
        banks.append((metric.bank['feats'], metric.bank_labels))
        # Every bank row is one distinct training sample with its label.
        distances = np.abs(metric.bank['feats'][:, None] -
                           all_feats[None]).max(axis=2)
        rows = distances.argmin(axis=1)
        assert distances.min(axis=1).max() < 1e-5
        assert len(set(rows.tolist())) == 5
        np.testing.assert_array_equal(metric.bank_labels, all_labels[rows])
    np.testing.assert_array_equal(banks[0][0], banks[1][0])
    assert not np.array_equal(banks[0][1], banks[2][1]) or not np.allclose(
        banks[0][0], banks[2][0])


def test_bank_hook_subsamples_an_mmengine_dataset_config():
    model = tiny_classifier()
    dataset_cfg = dict(
        type='DigitsDataset', split='test', pipeline=[dict(type='PackInputs')])
    metric = OSRMetric()
    hook = OSRBankHook(
        dataloader=loader_cfg(dataset_cfg, batch_size=4),
        max_samples=7)
    hook.before_val_epoch(mock_runner(model, [metric]))
    assert metric.bank['feats'].shape == (7, 64)
    # Each row is the feature of a distinct test image, with its label.
    loader = Runner.build_dataloader(loader_cfg(dataset_cfg, batch_size=64))
    all_feats, all_labels = [], []
    with torch.no_grad():
        for batch in loader:
            for sample in model.test_step(batch):
                all_feats.append(sample.feats.numpy())
                all_labels.append(sample.gt_label.item())
    distances = np.abs(metric.bank['feats'][:, None] -
                       np.stack(all_feats)[None]).max(axis=2)
    rows = distances.argmin(axis=1)
    assert distances.min(axis=1).max() < 1e-5
    assert len(set(rows.tolist())) == 7
    np.testing.assert_array_equal(metric.bank_labels,
                                  np.array(all_labels)[rows])


def test_bank_hook_without_osr_metric_does_nothing():
    model = MagicMock()
    hook = OSRBankHook(dataloader=loader_cfg(known_set()))
    hook.before_val_epoch(mock_runner(model, [object()]))
    model.test_step.assert_not_called()
    with pytest.raises(ValueError, match='max_samples must be a positive'):
        OSRBankHook(dataloader=loader_cfg(known_set()), max_samples=0)


def evaluate_pipeline():
    """Bank through the hook, then the metric over the open set, with the
    loaders split across the ranks of the current process group (if any).

    Returns the metrics and the bank (feats, labels)."""
    model = tiny_classifier()
    metric = OSRMetric(**{k: v for k, v in metric_cfg().items()
                          if k != 'type'})
    evaluator = Evaluator(metric)
    hook = OSRBankHook(dataloader=loader_cfg(known_set()))
    hook.before_val_epoch(mock_runner(model, evaluator.metrics))
    loader = Runner.build_dataloader(loader_cfg(open_set(), batch_size=2))
    with torch.no_grad():
        for batch in loader:
            evaluator.process(model.test_step(batch), batch)
    metrics = evaluator.evaluate(len(loader.dataset))
    return metrics, metric.bank['feats'], metric.bank_labels


def distributed_worker(rank, world_size, port, out_dir):
    torch.set_num_threads(1)
    dist.init_process_group(
        'gloo',
        init_method=f'tcp://127.0.0.1:{port}',
        rank=rank,
        world_size=world_size)
    try:
        result = evaluate_pipeline()
        with open(osp.join(out_dir, f'rank{rank}.pkl'), 'wb') as f:
            pickle.dump(result, f)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_two_gloo_ranks_give_the_single_process_numbers(tmp_path):
    metrics, bank_feats, bank_labels = evaluate_pipeline()
    mp.spawn(
        distributed_worker,
        args=(2, free_port(), str(tmp_path)),
        nprocs=2,
        join=True)
    for rank in range(2):
        with open(tmp_path / f'rank{rank}.pkl', 'rb') as f:
            rank_metrics, rank_feats, rank_labels = pickle.load(f)
        # Every rank holds the full bank, in dataset order.
        np.testing.assert_allclose(rank_feats, bank_feats, atol=1e-5)
        np.testing.assert_array_equal(rank_labels, bank_labels)
        # The metrics are broadcast from rank 0 to every rank.
        assert rank_metrics.keys() == metrics.keys()
        for key, value in metrics.items():
            assert rank_metrics[key] == pytest.approx(value, abs=1e-6), key


def test_removed_collect_device_is_refused_by_name():
    with pytest.raises(TypeError, match="unexpected keyword argument "
                       "'collect_device'"):
        OSRBankHook(dataloader=dict(), collect_device='cpu')
