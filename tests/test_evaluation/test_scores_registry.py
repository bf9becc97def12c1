"""The score registry: build, fit, score; the six original scores give the
numbers they gave before the registry (fixture)."""
import json

import numpy as np
import pytest
from mmengine.registry import DefaultScope

from gradmix_plugin.evaluation import OSR_SCORES, OSRMetric
from gradmix_plugin.evaluation.scores import ScoreInputError
from gradmix_plugin.registry import SCORES

#: Written by OSRMetric.calculate before the scores became registered
#: classes (feature='feats', knn_k=5, class_knn_k=3,
#: energy_temperature=2.0, 4 classes, 120 bank vectors, 35 known and 15
#: unknown queries), with its per-sample scores and predictions and all
#: metrics.
FIXTURE = 'tests/test_evaluation/fixtures/six_scores.json'
SIX = dict(
    msp=dict(type='msp'),
    mls=dict(type='mls'),
    energy=dict(type='energy', temperature=2.0),
    knn=dict(type='knn', k=5),
    class_knn=dict(type='class_knn', k=3),
    mahalanobis=dict(type='mahalanobis'))


@pytest.fixture(scope='module')
def fixture():
    with open(FIXTURE) as f:
        return {
            key: np.array(value['values'], dtype=value['dtype'])
            for key, value in json.load(f).items()
        }


def test_registry_has_the_six_scores():
    assert set(OSR_SCORES) <= set(SCORES.module_dict)


@pytest.mark.parametrize('name', sorted(SIX))
def test_six_scores_identical_to_before(fixture, name):
    score = SCORES.build(SIX[name]).fit(
        train=dict(feats=fixture['bank'], logits=None,
                   labels=fixture['bank_labels']))
    values, preds = score.score_and_predict(
        feats=fixture['feats'], logits=fixture['logits'])
    np.testing.assert_array_equal(values, fixture[f'score_{name}'])
    if preds is not None:
        np.testing.assert_array_equal(preds, fixture[f'pred_{name}'])


def test_osr_metric_identical_to_before(fixture):
    metrics, per_sample = OSRMetric.calculate(
        dict(feats=fixture['feats'], logits=fixture['logits']),
        fixture['labels'],
        bank=dict(feats=fixture['bank']),
        bank_labels=fixture['bank_labels'],
        feature='feats',
        knn_k=5,
        class_knn_k=3,
        energy_temperature=2.0)
    expected = dict(
        zip(fixture['metric_keys'].tolist(),
            fixture['metric_values'].tolist()))
    assert list(metrics) == list(expected)
    for key, value in expected.items():
        assert metrics[key] == value or (np.isnan(value)
                                         and np.isnan(metrics[key])), key
    for key in ('pred_label', 'is_known', 'gt_label'):
        np.testing.assert_array_equal(per_sample[key], fixture[key])
    for name in OSR_SCORES:
        np.testing.assert_array_equal(per_sample[f'score_{name}'],
                                      fixture[f'score_{name}'])
        np.testing.assert_array_equal(per_sample[f'pred_{name}'],
                                      fixture[f'pred_{name}'])


def test_build_under_mmpretrain_scope_and_unknown_name():
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        score = SCORES.build(dict(type='energy', temperature=3.0))
    assert score.temperature == 3.0
    with pytest.raises(KeyError, match="unknown score 'nope'.*'msp'"):
        SCORES.build(dict(type='nope'))


def test_score_before_fit_and_missing_inputs_are_refused(fixture):
    with pytest.raises(ScoreInputError, match="'knn' must be fitted"):
        SCORES.build(dict(type='knn')).score(feats=fixture['feats'])
    with pytest.raises(ScoreInputError, match="'msp' needs logits"):
        SCORES.build(dict(type='msp')).score(feats=fixture['feats'])
    with pytest.raises(ScoreInputError, match="'knn' is fitted on known"):
        SCORES.build(dict(type='knn')).fit()


def test_osr_metric_score_configs():
    metric = OSRMetric(scores=['knn', dict(type='react', name='react95',
                                           percentile=95)], knn_k=7)
    assert metric.scores == ('knn', 'react95')
    assert metric.score_specs['knn'] == dict(
        type='knn', k=7, chunk_size=4096, bank_dtype='float32',
        index='flat', nlist=1024, nprobe=32, use_gpu=None)
    assert metric.score_specs['react95'] == dict(type='react', percentile=95)
    with pytest.raises(ValueError, match="score 'react' is listed twice"):
        OSRMetric(scores=['react', dict(type='react', percentile=95)])
    with pytest.raises(ValueError, match="OSRMetric knn_k=10 conflicts "
                       "with k=20 of score 'knn'; set it in one place"):
        OSRMetric(scores=[dict(type='knn', k=20)], knn_k=10)
    # The same value in both places, or the option at its default: fine.
    assert OSRMetric(scores=[dict(type='knn', k=20)]).score_specs['knn'][
        'k'] == 20


def test_fast_logsumexp_and_top_k_are_exact():
    from scipy.special import logsumexp

    from gradmix_plugin.evaluation.functional._utils import logsumexp_rows
    from gradmix_plugin.evaluation.scores._posthoc import top_k_mask
    rng = np.random.default_rng(0)
    for scale in (1e-3, 1.0, 50.0):
        x = rng.normal(size=(300, 17)) * scale
        x[::5, 3] = x[::5].max(axis=1)  # tied maxima
        x[::7] = 1.5  # constant rows
        np.testing.assert_array_equal(logsumexp_rows(x),
                                      logsumexp(x, axis=1))
    x = rng.integers(0, 4, size=(200, 12)).astype(float)  # many ties
    for k in (0, 1, 5, 12):
        order = np.argsort(-x, axis=1, kind='stable')[:, :k]
        expected = np.zeros(x.shape, bool)
        np.put_along_axis(expected, order, True, axis=1)
        np.testing.assert_array_equal(top_k_mask(x, k), expected)
