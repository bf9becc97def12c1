"""What the models store for the scores, and the errors when a score's
inputs are missing (the score and the model named)."""
import numpy as np
import pytest
import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from gradmix_plugin.evaluation import OSRMetric, ScoreInputError
from gradmix_plugin.evaluation.metrics.osr_metric import final_layer_of
from gradmix_plugin.evaluation.scores import POSTHOC_SCORES
from gradmix_plugin.registry import SCORES


def build(head):
    torch.manual_seed(0)
    return MODELS.build(
        dict(
            type='ContrastiveClassifier',
            backbone=dict(type='ResNet_CIFAR', depth=18, stem_channels=8,
                          base_channels=8),
            neck=dict(type='GlobalAveragePooling'),
            projector=dict(type='ProjectionNeck', in_channels=64,
                           hid_channels=64, out_channels=16),
            head=dict(type='OSRLinearClsHead', num_classes=3,
                      in_channels=64) if head else None)).eval()


def predict(model, n=12, seed=0):
    images = torch.randn(n, 3, 16, 16,
                         generator=torch.Generator().manual_seed(seed))
    samples = [DataSample().set_gt_label(i % 3) for i in range(n)]
    with torch.no_grad():
        results = model.predict(images, samples)
    keys = [k for k in ('feats', 'embeds', 'logits') if k in results[0]]
    return {
        k: torch.stack([r.get(k) for r in results]).numpy()
        for k in keys
    }


def test_classifier_keeps_feats_logits_and_gives_the_final_layer():
    model = build(head=True)
    outputs = predict(model)
    weight, bias, name = final_layer_of(model)
    assert name == 'ContrastiveClassifier' and weight.shape == (3, 64)
    np.testing.assert_allclose(outputs['feats'] @ weight.T + bias,
                               outputs['logits'], rtol=1e-4, atol=1e-5)
    # mmpretrain's ImageClassifier with the plugin's head: from the head.
    image_classifier = MODELS.build(
        dict(type='ImageClassifier',
             backbone=dict(type='ResNet_CIFAR', depth=18, stem_channels=8,
                           base_channels=8),
             neck=dict(type='GlobalAveragePooling'),
             head=dict(type='OSRLinearClsHead', num_classes=4,
                       in_channels=64)))
    weight, bias, name = final_layer_of(image_classifier)
    assert name == 'ImageClassifier' and weight.shape == (4, 64)
    torch.testing.assert_close(
        torch.from_numpy(bias).float(), image_classifier.head.fc.bias.data)


def test_every_score_through_osr_metric_with_a_real_model():
    model = build(head=True)
    # An untrained model predicts one class; a final layer from centred
    # features spreads its predictions over the classes.
    feats = predict(model, n=60, seed=1)['feats']
    centred = feats - feats.mean(axis=0)
    top = np.linalg.svd(centred, full_matrices=False)[2][:2]
    model.head.fc.weight.data = torch.from_numpy(
        np.stack([top[0], -top[0], top[1]]) * 10)
    model.head.fc.bias.data = -model.head.fc.weight.data @ torch.from_numpy(
        feats.mean(axis=0))
    bank = predict(model, n=60, seed=1)
    test = predict(model, n=20, seed=2)
    labels = np.arange(20) % 3
    labels[15:] = -1
    # An untrained model: label the bank with its own predictions, so that
    # every class has correctly classified samples (SHE's patterns).
    bank_labels = bank['logits'].argmax(axis=1)
    assert set(bank_labels) == {0, 1, 2}
    metric = OSRMetric(
        scores=list(POSTHOC_SCORES[:-6]) + [
            dict(type='vim', dim=16), 'rmds', 'she',
            dict(type='nnguide', K=5, alpha=0.5), 'fdbd', 'gradnorm',
            'knn', 'mls'
        ],
        knn_k=5)
    metric.set_bank(bank, bank_labels)
    metric.set_model(model)
    metrics, per_sample = OSRMetric.calculate(
        test, labels, bank=metric.bank, bank_labels=metric.bank_labels,
        scores=list(metric._score_specs_with_names()),
        fc_weight=metric.fc_weight, fc_bias=metric.fc_bias, knn_k=5)
    for name in POSTHOC_SCORES + ('knn', 'mls'):
        assert f'{name}/auroc' in metrics, name
        assert per_sample[f'score_{name}'].shape == (20, )


def test_score_needing_logits_on_a_model_without_head_names_both():
    model = build(head=False)
    outputs = predict(model)
    labels = np.array([0, 1, 2] * 3 + [-1] * 3)
    for name, match in [
        ('msp', "'msp' cannot be computed for ContrastiveClassifier: the "
         'model outputs have no logits'),
        ('react', "'react' cannot be computed for ContrastiveClassifier: "
         'no final linear layer'),
    ]:
        metric = OSRMetric(scores=(name, ))
        metric.set_model(model)
        assert metric.fc_weight is None
        with pytest.raises(ScoreInputError, match=match):
            OSRMetric.calculate(
                outputs, labels, bank=dict(feats=outputs['feats']),
                bank_labels=np.arange(12) % 3, scores=(name, ),
                model_name=metric.model_name)


def test_registered_names_are_valid_key_names():
    for name in SCORES.module_dict:
        assert '/' not in name and '=' not in name
