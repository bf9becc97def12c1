"""OSRMetric on degenerate inputs: mixed-precision outputs, no samples,
constant features, a non-positive energy temperature."""
import numpy as np
import pytest
import torch
from helpers import logged_messages
from mmpretrain.structures import DataSample

from gradmix_plugin.evaluation import OSRMetric


def samples(feats, logits, labels):
    out = []
    for feat, logit, label in zip(feats, logits, labels):
        sample = DataSample().set_gt_label(int(label))
        sample.set_field(feat, 'feats', dtype=torch.Tensor)
        sample.set_field(logit, 'logits', dtype=torch.Tensor)
        out.append(sample.to_dict())
    return out


def test_bfloat16_outputs_are_processed():
    """``tools/test.py --amp`` on CPU gives bf16 outputs (numpy has no
    bf16: ``process`` used to crash)."""
    metric = OSRMetric(scores=('msp', ), feature='feats')
    feats = torch.randn(4, 8, dtype=torch.bfloat16)
    logits = torch.randn(4, 3, dtype=torch.bfloat16)
    metric.process(None, samples(feats, logits, [0, 1, 2, -1]))
    assert metric.results[0]['logits'].dtype == np.float32
    np.testing.assert_array_equal(metric.results[0]['logits'],
                                  logits[0].float().numpy())


def test_no_samples_say_so():
    with pytest.raises(ValueError,
                       match='OSRMetric received no samples: the evaluated '
                       'dataloader is empty'):
        OSRMetric(scores=('msp', ), feature='feats').compute_metrics([])


def test_constant_features_warn():
    metric = OSRMetric(scores=('msp', ), feature='feats')
    feats = torch.ones(6, 8)
    logits = torch.ones(6, 3)
    metric.process(None, samples(feats, logits, [0, 1, 2, 0, -1, -1]))
    with logged_messages() as messages:
        metric.compute_metrics(metric.results)
    assert any('OSRMetric: the logits of all 6 samples are the same (a '
               'degenerate or collapsed model)' in m for m in messages)


@pytest.mark.parametrize('temperature', [-1, 0])
def test_energy_temperature_must_be_positive(temperature):
    with pytest.raises(ValueError,
                       match='energy: temperature must be a finite number '
                       f'> 0, got {temperature}'):
        OSRMetric(scores=('energy', ), energy_temperature=temperature)
