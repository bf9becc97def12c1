"""GradMix trains on every backbone family: CE mode (partner fill) and the
contrastive reference mode, in float32 and under bfloat16 autocast."""
from types import SimpleNamespace
from unittest.mock import MagicMock

import pytest
import torch
from backbone_helpers import FAMILIES, NUM_CLASSES, ce_model, contrastive_model
from mmengine.optim import OptimWrapper
from mmpretrain.structures import DataSample

from gradmix_plugin.attribution import AttributionLayerError
from gradmix_plugin.engine.hooks import GradMixModelHook
from gradmix_plugin.engine.hooks.gradmix_model_hook import (
    find_gradmix_augments,
)


def batch(batch_size=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (batch_size, 3, 32, 32),
                           generator=generator, dtype=torch.uint8)
    return dict(
        inputs=list(images),
        data_samples=[
            DataSample().set_gt_label(i % NUM_CLASSES)
            for i in range(batch_size)
        ])


def attached(family):
    model = ce_model(family)
    runner = SimpleNamespace(model=model, logger=MagicMock())
    GradMixModelHook().before_train(runner)
    (gradmix, ) = find_gradmix_augments(model)
    (message, ), _ = runner.logger.info.call_args
    assert all(name in message for name in gradmix.attribution_layers)
    return model, gradmix


@pytest.mark.parametrize('family', FAMILIES)
def test_ce_gradmix_trains_and_attribution_leaves_model_alone(family):
    model, gradmix = attached(family)
    model.train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    data = model.data_preprocessor(batch(), training=True)
    # The attribution pass of GradMix: no gradient, no buffer moved.
    assert all(p.grad is None for p in model.parameters())
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    scores = torch.stack([s.gt_score for s in data['data_samples']])
    torch.testing.assert_close(scores.sum(1), torch.ones(4))
    assert not torch.equal(data['inputs'], model.data_preprocessor(
        batch(), training=False)['inputs'])

    optim_wrapper = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1))
    for _ in range(2):
        log_vars = model.train_step(batch(), optim_wrapper)
        assert torch.isfinite(log_vars['loss'])
    assert not torch.equal(state['head.fc.weight'],
                           model.state_dict()['head.fc.weight'])


@pytest.mark.parametrize('family', FAMILIES)
def test_ce_maps_under_bf16_autocast(family):
    model, gradmix = attached(family)
    inputs = model.data_preprocessor(batch(), training=False)['inputs']
    targets = torch.tensor([0, 1, 2, 0])
    reference = gradmix._layercam(inputs, 'label', targets)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        mixed = gradmix._layercam(inputs, 'label', targets)
    assert mixed.dtype == torch.float32 and mixed.shape == (4, 32, 32)
    assert torch.isfinite(mixed).all() and reference.max() > 0
    assert (mixed - reference).abs().mean() < 0.15


@pytest.mark.parametrize('autocast', [False, True], ids=['fp32', 'bf16'])
@pytest.mark.parametrize('family', FAMILIES)
def test_contrastive_gradmix_step(family, autocast):
    model = contrastive_model(family)
    model.train()
    generator = torch.Generator().manual_seed(0)
    views = [torch.randn(4, 3, 32, 32, generator=generator)
             for _ in range(2)]
    samples = [DataSample().set_gt_label(i % NUM_CLASSES) for i in range(4)]
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        losses = model.loss(views, samples)
    assert {'loss_simclr', 'loss_simclr_mix', 'lambda_eff'} <= set(losses)
    assert all(torch.isfinite(value) for value in losses.values())
    sum(value for key, value in losses.items() if 'loss' in key).backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_hook_refuses_a_tuple_layer_before_training():
    model = ce_model('swin', layers=['backbone.stages.3'])
    runner = SimpleNamespace(model=model, logger=MagicMock())
    with pytest.raises(AttributionLayerError,
                       match=r"'backbone.stages.3' \(SwinBlockSequence\) "
                       r'returned tuple.*backbone.stages.3.blocks'):
        GradMixModelHook().before_train(runner)
