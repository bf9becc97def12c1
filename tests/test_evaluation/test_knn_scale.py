"""kNN scores at scale: float16 banks, blocks and chunks, IVF, and the
bank gathered by ``OSRBankHook`` (tiny data, brute-force NumPy oracles)."""
import tracemalloc
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.logging import MMLogger
from mmpretrain.structures import DataSample
from torch.utils.data import Dataset

import gradmix_plugin  # noqa: F401
from gradmix_plugin.engine.hooks import OSRBankHook
from gradmix_plugin.evaluation import OSRMetric
from gradmix_plugin.evaluation import functional as F
from gradmix_plugin.evaluation.functional import (
    class_knn_scores,
    knn_scores,
    l2_normalize,
)


def clustered(num_bank=300, num_queries=41, dim=16, num_classes=5, seed=0):
    """Bank around class centres (uneven classes, unsorted), queries."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(num_classes, dim)) * 2
    labels = rng.choice(num_classes, num_bank, p=np.linspace(1, 3,
                                                             num_classes) /
                        np.linspace(1, 3, num_classes).sum())
    bank = (centers[labels] + rng.normal(size=(num_bank, dim))).astype(
        np.float32)
    query = np.concatenate([
        centers[rng.integers(0, num_classes, num_queries - 11)] +
        rng.normal(size=(num_queries - 11, dim)),
        rng.normal(size=(11, dim)) * 2
    ]).astype(np.float32)
    return query, bank, labels


def oracle_similarities(query, bank):
    return l2_normalize(query).astype(np.float64) @ bank.astype(np.float64).T


def oracle_knn(query, bank, k):
    kth = -np.sort(-oracle_similarities(query, bank), axis=1)[:, k - 1]
    return -(2 - 2 * kth)


def oracle_class_knn(query, bank, labels, num_classes, k):
    similarities = oracle_similarities(query, bank)
    sums = np.stack([
        np.sort(similarities[:, labels == c], axis=1)[:, -k:].sum(1)
        for c in range(num_classes)
    ], axis=1)
    positive = np.clip(sums, 0, None)
    probs = positive / positive.sum(1, keepdims=True)
    return probs.max(1), sums.argmax(1)


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 16 bank rows, so that every search merges several blocks,
    the last one shorter than k."""
    monkeypatch.setattr(F._utils, 'BANK_BLOCK_ROWS', 16)


@pytest.mark.parametrize('bank_dtype', ['float32', 'float16'])
def test_knn_blocks_and_chunks_equal_the_oracle(small_blocks, bank_dtype):
    query, bank, _ = clustered(num_bank=90)
    stored = l2_normalize(bank).astype(bank_dtype)  # the stored rounding
    for k in (1, 7, 20):
        expected = oracle_knn(query, stored, k)
        chunked = knn_scores(
            query, bank, k, chunk_size=5, bank_dtype=bank_dtype)
        whole = knn_scores(
            query, bank, k, chunk_size=len(query), bank_dtype=bank_dtype)
        np.testing.assert_allclose(chunked, expected, atol=1e-5)
        np.testing.assert_allclose(chunked, whole, atol=1e-6)


def test_float16_bank_is_float32_up_to_its_rounding():
    query, bank, labels = clustered()
    exact = knn_scores(query, bank, 10)
    half = knn_scores(query, torch.from_numpy(bank), 10, bank_dtype='float16')
    # float16 rounds the unit vectors' entries by up to 2 ** -11 relative.
    assert np.abs(half - exact).max() < 4e-3
    assert not np.array_equal(half, exact)
    np.testing.assert_allclose(
        half,
        oracle_knn(query, l2_normalize(bank).astype(np.float16), 10),
        atol=1e-5)
    scores, preds = class_knn_scores(
        query, bank, labels, 5, k=3, bank_dtype='float16')
    expected_scores, expected_preds = oracle_class_knn(
        query, l2_normalize(bank).astype(np.float16), labels, 5, 3)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)
    np.testing.assert_array_equal(preds, expected_preds)


@pytest.mark.parametrize('bank_dtype', ['float32', 'float16'])
def test_class_knn_equals_the_per_class_oracle(small_blocks, bank_dtype):
    # Classes of 30 to 90 rows, larger than a block, labels unsorted.
    query, bank, labels = clustered(num_bank=300)
    stored = l2_normalize(bank).astype(bank_dtype)
    for k in (1, 4):
        scores, preds = class_knn_scores(
            query, bank, labels, 5, k=k, chunk_size=6, bank_dtype=bank_dtype)
        expected_scores, expected_preds = oracle_class_knn(
            query, stored, labels, 5, k)
        np.testing.assert_allclose(scores, expected_scores, atol=1e-5)
        np.testing.assert_array_equal(preds, expected_preds)
        assert scores.dtype == np.float64 and preds.dtype == np.int64


@pytest.mark.parametrize('bank_dtype', ['float32', 'float16'])
def test_ivf_with_every_list_probed_is_exact(bank_dtype):
    query, bank, _ = clustered(num_bank=400)
    exact = knn_scores(query, bank, 5)
    ivf = knn_scores(
        query, bank, 5, chunk_size=9, bank_dtype=bank_dtype, index='ivf',
        nlist=6, nprobe=6)
    # float16 lists hold the residuals to the list centroids in float16.
    np.testing.assert_allclose(
        ivf, exact, atol=1e-5 if bank_dtype == 'float32' else 4e-3)
    # One list of six: approximate, never above the exact k-th similarity.
    approx = knn_scores(query, bank, 5, index='ivf', nlist=6, nprobe=1)
    assert (approx <= exact + 1e-5).all()
    assert (approx < exact - 1e-5).any()


def test_float16_bank_halves_the_memory(small_blocks):
    _, bank, labels = clustered(num_bank=20000, num_queries=20, dim=64)
    query = bank[:20]
    for name, search in [
        ('knn', lambda: knn_scores(query, bank, 5, bank_dtype='float16')),
        ('class_knn', lambda: class_knn_scores(
            query, bank, labels, 5, k=3, bank_dtype='float16')),
    ]:
        tracemalloc.start()
        search()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        # The float16 copy is half the float32 bank; blocks are small.
        assert peak < 0.6 * bank.nbytes, name


def test_knn_option_errors():
    query, bank, labels = clustered(num_bank=40)
    with pytest.raises(ValueError, match="bank_dtype must be one of .*"
                       "'bfloat16'"):
        knn_scores(query, bank, 3, bank_dtype='bfloat16')
    with pytest.raises(ValueError, match="index must be one of .*'hnsw'"):
        knn_scores(query, bank, 3, index='hnsw')
    with pytest.raises(ValueError, match=r'nprobe must be an integer in '
                       r'\[1, nlist=4\], got 5'):
        knn_scores(query, bank, 3, index='ivf', nlist=4, nprobe=5)
    with pytest.raises(ValueError, match='nlist=64 is larger than the bank'):
        knn_scores(query, bank, 3, index='ivf', nlist=64, nprobe=1)
    with pytest.raises(ValueError, match='fewer than k=30 bank vectors in '
                       'their nprobe=1'):
        knn_scores(query, bank, 30, index='ivf', nlist=8, nprobe=1)
    with pytest.raises(ValueError, match='bank_dtype must be one of'):
        class_knn_scores(query, bank, labels, 5, bank_dtype='int8')
    with pytest.raises(ValueError, match='nlist must be a positive'):
        OSRMetric(knn_index='ivf', knn_nlist=0)


def test_osr_metric_passes_the_knn_options():
    query, bank, labels = clustered(num_bank=200)
    outputs = dict(embeds=query)
    test_labels = np.r_[np.zeros(30, np.int64), -np.ones(11, np.int64)]
    common = dict(
        bank=dict(embeds=bank), bank_labels=labels,
        scores=('class_knn', 'knn'), class_knn_k=3, knn_k=5)
    _, exact = OSRMetric.calculate(outputs, test_labels, **common)
    _, half = OSRMetric.calculate(
        outputs, test_labels, bank_dtype='float16', **common)
    stored = l2_normalize(bank).astype(np.float16)
    np.testing.assert_allclose(
        half['score_knn'], oracle_knn(query, stored, 5), atol=1e-5)
    np.testing.assert_allclose(
        half['score_class_knn'],
        oracle_class_knn(query, stored, labels, 5, 3)[0],
        atol=1e-5)
    assert not np.array_equal(half['score_knn'], exact['score_knn'])
    _, ivf = OSRMetric.calculate(
        outputs, test_labels, knn_index='ivf', knn_nlist=4, knn_nprobe=1,
        **common)
    assert (ivf['score_knn'] <= exact['score_knn'] + 1e-5).all()
    assert (ivf['score_knn'] < exact['score_knn'] - 1e-5).any()
    np.testing.assert_array_equal(ivf['score_class_knn'],
                                  exact['score_class_knn'])
    metric = OSRMetric(bank_dtype='float16', knn_index='ivf', knn_nlist=4,
                       knn_nprobe=2)
    assert (metric.bank_dtype, metric.knn_index, metric.knn_nlist,
            metric.knn_nprobe) == ('float16', 'ivf', 4, 2)


class Indexed(Dataset):
    """Sample i is a 1x1 image of value i, class i % 3."""

    def __init__(self, size):
        self.size = size

    def __len__(self):
        return self.size

    def __getitem__(self, index):
        return dict(
            inputs=torch.full((3, 1, 1), float(index)),
            data_samples=DataSample().set_gt_label(index % 3))


class EchoModel(torch.nn.Module):
    """Outputs the pixel as ``feats`` and twice it as ``embeds``."""

    def test_step(self, data_batch):
        outputs = []
        for image, sample in zip(data_batch['inputs'],
                                 data_batch['data_samples']):
            sample.set_field(image.reshape(-1)[:2].clone(), 'feats')
            sample.set_field(2 * image.reshape(-1), 'embeds')
            outputs.append(sample)
        return outputs


@pytest.mark.parametrize('shuffle', [False, True])
def test_gathered_bank_is_in_dataset_order(shuffle):
    size = 11
    hook = OSRBankHook(
        dataloader=dict(
            dataset=Indexed(size),
            batch_size=4,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=shuffle),
            collate_fn=dict(type='pseudo_collate')))
    metric = OSRMetric(scores=('knn', ))
    runner = SimpleNamespace(
        model=EchoModel(),
        val_evaluator=SimpleNamespace(metrics=[metric]),
        logger=MMLogger.get_instance('test_knn_scale'),
        seed=0)
    hook.before_val_epoch(runner)
    order = np.arange(size, dtype=np.float32)
    np.testing.assert_array_equal(metric.bank['feats'],
                                  np.stack([order, order], axis=1))
    np.testing.assert_array_equal(metric.bank['embeds'],
                                  2 * np.stack([order] * 3, axis=1))
    np.testing.assert_array_equal(metric.bank_labels, np.arange(size) % 3)
