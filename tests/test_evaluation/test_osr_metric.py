import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmpretrain.registry import METRICS
from mmpretrain.structures import DataSample
from sklearn.metrics import roc_auc_score

from gradmix_plugin.evaluation import (
    OSRMetric,
    ScoreInputError,
    compute_osr_metrics,
    mahalanobis_scores,
)

NUM_CLASSES = 3


def make_outputs(seed=0, num_known=24, num_unknown=12, num_bank=30):
    """Clustered known samples, scattered unknowns, a training bank."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(NUM_CLASSES, 8)) * 2
    known_labels = np.arange(num_known) % NUM_CLASSES
    feats = np.concatenate([
        centers[known_labels] + rng.normal(size=(num_known, 8)),
        rng.normal(size=(num_unknown, 8)) * 2
    ]).astype(np.float32)
    embeds = (feats[:, :4] + 0.3 * rng.normal(size=(len(feats), 4))).astype(
        np.float32)
    logits = (feats @ centers.T.astype(np.float32) +
              rng.normal(size=(len(feats), NUM_CLASSES))).astype(np.float32)
    labels = np.concatenate([known_labels, -np.ones(num_unknown, np.int64)])
    bank_labels = np.arange(num_bank) % NUM_CLASSES
    bank_feats = (centers[bank_labels] +
                  rng.normal(size=(num_bank, 8))).astype(np.float32)
    bank = dict(
        feats=bank_feats,
        embeds=(bank_feats[:, :4] +
                0.3 * rng.normal(size=(num_bank, 4))).astype(np.float32))
    outputs = dict(feats=feats, embeds=embeds, logits=logits)
    return outputs, labels, bank, bank_labels


def data_samples(outputs, labels, keys=('feats', 'embeds', 'logits')):
    samples = []
    for i, label in enumerate(labels):
        sample = DataSample().set_gt_label(int(label))
        for key in keys:
            sample.set_field(
                torch.from_numpy(outputs[key][i]), key, dtype=torch.Tensor)
        samples.append(sample)
    return samples


def evaluate(metric, outputs, labels, keys=('feats', 'embeds', 'logits'),
             batch_size=5):
    evaluator = Evaluator(metric)
    samples = data_samples(outputs, labels, keys)
    for start in range(0, len(samples), batch_size):
        evaluator.process(samples[start:start + batch_size])
    return evaluator.evaluate(len(samples))


def cosine(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return a.astype(np.float64) @ b.astype(np.float64).T


def brute_class_knn(query_sims, bank_labels, k):
    sums = np.stack([
        np.sort(query_sims[:, bank_labels == c], axis=1)[:, -k:].sum(1)
        for c in range(NUM_CLASSES)
    ], axis=1)
    positive = np.clip(sums, 0, None)
    totals = positive.sum(1, keepdims=True)
    probs = np.where(totals > 0, positive / np.where(totals > 0, totals, 1),
                     1 / NUM_CLASSES)
    return probs.max(1), sums.argmax(1)


def test_metric_end_to_end_through_evaluator():
    outputs, labels, bank, bank_labels = make_outputs()
    metric = METRICS.build(
        dict(type='OSRMetric', feature='embeds', class_knn_k=2, knn_k=4))
    metric.set_bank(bank, bank_labels)
    metrics = evaluate(metric, outputs, labels)

    is_known = labels >= 0
    logits = outputs['logits']
    preds = logits.argmax(1)
    correct = is_known & (preds == labels)
    assert metrics['osr/accuracy'] == pytest.approx(
        100 * correct.sum() / is_known.sum())
    assert metrics['osr/mls/auroc'] == pytest.approx(
        100 * roc_auc_score(is_known, logits.max(1)))
    softmax = torch.softmax(torch.from_numpy(logits).double(), 1)
    assert metrics['osr/msp/auroc'] == pytest.approx(
        100 * roc_auc_score(is_known, softmax.max(1).values.numpy()))
    assert metrics['osr/energy/auroc'] == pytest.approx(
        100 * roc_auc_score(
            is_known, torch.logsumexp(torch.from_numpy(logits), 1).numpy()))

    sims = cosine(outputs['embeds'], bank['embeds'])
    class_knn, class_knn_preds = brute_class_knn(sims, bank_labels, 2)
    assert metrics['osr/class_knn/auroc'] == pytest.approx(
        100 * roc_auc_score(is_known, class_knn))
    assert metrics['osr/class_knn/accuracy'] == pytest.approx(
        100 * np.mean(class_knn_preds[is_known] == labels[is_known]))
    knn = -(2 - 2 * np.sort(sims, axis=1)[:, -4])
    assert metrics['osr/knn/auroc'] == pytest.approx(
        100 * roc_auc_score(is_known, knn))
    # knn uses the logits' predictions when the model has a classifier.
    assert metrics['osr/knn/accuracy'] == metrics['osr/accuracy']

    names = {'auroc', 'aupr_in', 'aupr_out', 'fpr95_known_pos',
             'fpr95_ood_pos', 'accuracy', 'oscr', 'oscr_arpl'}
    for score in ('class_knn', 'knn', 'msp', 'mls', 'energy'):
        assert {k.split('/')[-1] for k in metrics
                if k.startswith(f'osr/{score}/')} == names
    assert all(0 <= v <= 100 for v in metrics.values())

    per_sample = metric.last_per_sample
    np.testing.assert_array_equal(per_sample['gt_label'], labels)
    np.testing.assert_array_equal(per_sample['is_known'], is_known)
    np.testing.assert_array_equal(per_sample['pred_label'], preds)
    np.testing.assert_allclose(per_sample['score_class_knn'], class_knn,
                               atol=1e-5)
    np.testing.assert_array_equal(per_sample['pred_class_knn'],
                                  class_knn_preds)


def test_both_features_concatenate_normalised_vectors():
    outputs, labels, bank, bank_labels = make_outputs(seed=1)
    metric = OSRMetric(scores=('knn', ), feature='both', knn_k=3)
    metric.set_bank(bank, bank_labels)
    metrics = evaluate(metric, outputs, labels)
    sims = (cosine(outputs['feats'], bank['feats']) +
            cosine(outputs['embeds'], bank['embeds'])) / 2
    knn = -(2 - 2 * np.sort(sims, axis=1)[:, -3])
    assert metrics['osr/knn/auroc'] == pytest.approx(
        100 * roc_auc_score(labels >= 0, knn))


def test_model_without_logits_uses_class_knn_predictions():
    outputs, labels, bank, bank_labels = make_outputs(seed=2)
    metric = OSRMetric(feature='feats', class_knn_k=3, knn_k=5)
    metric.set_bank(bank, bank_labels)
    metrics = evaluate(metric, outputs, labels, keys=('feats', ))
    assert not any(k.startswith(('osr/msp', 'osr/mls', 'osr/energy'))
                   for k in metrics)
    _, class_knn_preds = brute_class_knn(
        cosine(outputs['feats'], bank['feats']), bank_labels, 3)
    is_known = labels >= 0
    expected = 100 * np.mean(class_knn_preds[is_known] == labels[is_known])
    assert metrics['osr/accuracy'] == pytest.approx(expected)
    assert metrics['osr/knn/accuracy'] == pytest.approx(expected)


def test_missing_inputs_skip_scores_or_raise():
    outputs, labels, bank, bank_labels = make_outputs(seed=3)
    # No bank: only the logit scores.
    metrics = evaluate(OSRMetric(), outputs, labels)
    assert {k.split('/')[1] for k in metrics} == {'msp', 'mls', 'energy',
                                                  'accuracy'}
    # No embeds in the outputs with feature='embeds'.
    metric = OSRMetric(knn_k=3)
    metric.set_bank(bank, bank_labels)
    metrics = evaluate(metric, outputs, labels, keys=('feats', 'logits'))
    assert 'osr/knn/auroc' not in metrics and 'osr/mls/auroc' in metrics
    # Nothing computable.
    with pytest.raises(ValueError, match='could not compute any'):
        evaluate(OSRMetric(), outputs, labels, keys=('feats', ))
    # A score chosen explicitly whose inputs are missing is an error that
    # names the score and the model.
    metric = OSRMetric(scores=('msp', ))
    metric.model_name = 'ContrastiveClassifier'
    with pytest.raises(ScoreInputError,
                       match="'msp' cannot be computed for "
                       'ContrastiveClassifier: the model outputs have no '
                       'logits'):
        evaluate(metric, outputs, labels, keys=('feats', ))


def test_calculate_without_runner_and_bad_arguments():
    outputs, labels, bank, bank_labels = make_outputs(seed=4)
    metrics, per_sample = OSRMetric.calculate(
        dict(logits=torch.from_numpy(outputs['logits'])),
        torch.from_numpy(labels),
        scores=('mls', ))
    assert metrics['mls/auroc'] == pytest.approx(
        100 * roc_auc_score(labels >= 0, outputs['logits'].max(1)))
    assert set(per_sample) == {'is_known', 'gt_label', 'pred_label',
                               'score_mls', 'pred_mls'}
    with pytest.raises(ValueError,
                       match="unknown score 'odin'.*registered scores"):
        OSRMetric(scores=('odin', ))
    with pytest.raises(ValueError, match="got 'pixels'"):
        OSRMetric(feature='pixels')
    metric = OSRMetric()
    with pytest.raises(ValueError, match='negative labels'):
        metric.set_bank(bank, -np.ones(len(bank_labels)))
    with pytest.raises(ValueError, match="bank\\['feats'\\] must have shape"):
        metric.set_bank(dict(feats=bank['feats'][:3]), bank_labels)


# OOD benchmarks: several sources, groups, Mahalanobis, OpenOOD values.
SOURCES = ('near_a', 'near_b', 'far')


def ood_case(seed=0):
    """36 known samples and 3 OOD sources of different difficulty."""
    outputs, labels, bank, bank_labels = make_outputs(
        seed, num_known=36, num_unknown=30)
    sources = np.array([None] * 36 + [SOURCES[i % 3] for i in range(30)],
                       dtype=object)
    far = sources == 'far'
    outputs['logits'][far] -= 3.0  # an easier source
    outputs['feats'][far] += 4.0
    return outputs, labels, bank, bank_labels, sources


def evaluate_with_sources(metric, outputs, labels, sources, groups=None,
                          batch_size=7):
    evaluator = Evaluator(metric)
    evaluator.dataset_meta = dict(
        classes=('a', 'b', 'c'), ood_sources=SOURCES, ood_groups=groups)
    samples = data_samples(outputs, labels)
    for sample, source in zip(samples, sources):
        if source is not None:
            sample.set_metainfo(dict(ood_source=source))
    for start in range(0, len(samples), batch_size):
        evaluator.process(samples[start:start + batch_size])
    return evaluator.evaluate(len(samples))


def test_per_source_metrics_equal_each_source_alone():
    outputs, labels, bank, bank_labels, sources = ood_case()
    metric = OSRMetric(
        scores=('knn', 'mahalanobis', 'mls'), feature='feats', knn_k=5,
        openood_compat=True)
    metric.set_bank(bank, bank_labels)
    groups = dict(near=['near_a', 'near_b'], every=list(SOURCES))
    metrics = evaluate_with_sources(metric, outputs, labels, sources, groups)

    kwargs = dict(bank=bank, bank_labels=bank_labels, feature='feats',
                  knn_k=5, scores=('knn', 'mahalanobis', 'mls'),
                  openood_compat=True)
    overall, _ = OSRMetric.calculate(outputs, labels, **kwargs)
    for key, value in overall.items():
        assert metrics[f'osr/{key}'] == pytest.approx(value), key
    per_source = {}
    for source in SOURCES:
        rows = (labels >= 0) | (sources == source)
        alone, _ = OSRMetric.calculate(
            {k: v[rows] for k, v in outputs.items()}, labels[rows], **kwargs)
        per_source[source] = alone
        for key, value in alone.items():
            if key != 'accuracy':
                assert metrics[f'osr/ood={source}/{key}'] == pytest.approx(
                    value), (source, key)
    # The far source is easier, and the sources differ from the overall.
    assert metrics['osr/ood=far/mls/auroc'] > metrics[
        'osr/ood=near_a/mls/auroc']
    for key in ('mls/auroc', 'mahalanobis/fpr95_ood_pos',
                'knn/openood_aupr_out', 'mls/oscr'):
        assert metrics[f'osr/group=near/{key}'] == pytest.approx(
            (per_source['near_a'][key] + per_source['near_b'][key]) / 2)
        assert metrics[f'osr/group=every/{key}'] == pytest.approx(
            np.mean([per_source[s][key] for s in SOURCES]))
    # Every metric of every score for every subset.
    names = {k.split('/')[-1] for k in metrics if k.startswith('osr/knn/')}
    assert len(names) == 13
    for subset in ('ood=near_a', 'ood=far', 'group=near'):
        for score in ('knn', 'mahalanobis', 'mls'):
            assert {k.split('/')[-1] for k in metrics
                    if k.startswith(f'osr/{subset}/{score}/')} == names

    per_sample = metric.last_per_sample
    np.testing.assert_array_equal(
        per_sample['ood_source'],
        np.where(labels >= 0, '', sources.astype(str)))


def test_mahalanobis_through_the_metric():
    outputs, labels, bank, bank_labels = make_outputs(seed=5)
    metric = OSRMetric(scores=('mahalanobis', ), feature='embeds')
    metric.set_bank(bank, bank_labels)
    evaluator = Evaluator(metric)
    evaluator.process(data_samples(outputs, labels))
    metrics = evaluator.evaluate(len(labels))
    scores, preds = mahalanobis_scores(outputs['embeds'], bank['embeds'],
                                       bank_labels)
    expected = compute_osr_metrics(scores, labels >= 0, preds, labels)
    for key, value in expected.items():
        assert metrics[f'osr/mahalanobis/{key}'] == pytest.approx(100 * value)
    np.testing.assert_array_equal(metric.last_per_sample['pred_mahalanobis'],
                                  preds)
    assert 'ood_source' not in metric.last_per_sample


def test_bad_sources_and_groups():
    outputs, labels, bank, bank_labels, sources = ood_case(seed=1)
    calculate = OSRMetric.calculate
    with pytest.raises(ValueError, match="group 'near' .* \\['tin'\\] have "
                       'no samples'):
        calculate(outputs, labels, scores=('mls', ), ood_sources=sources,
                  ood_groups=dict(near=['near_a', 'tin']))
    named = sources.copy()
    named[0] = 'far'
    with pytest.raises(ValueError, match="1 known samples have an "
                       "ood_source \\(e.g. 'far'\\)"):
        calculate(outputs, labels, scores=('mls', ), ood_sources=named)
    unnamed = sources.copy()
    unnamed[-1] = None
    with pytest.raises(ValueError, match='1 unknown samples have no '
                       'ood_source'):
        calculate(outputs, labels, scores=('mls', ), ood_sources=unnamed)
    with pytest.raises(ValueError, match='need ood_sources'):
        calculate(outputs, labels, scores=('mls', ),
                  ood_groups=dict(near=['near_a']))
