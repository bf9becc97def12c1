import copy

import pytest
import torch
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from gradmix_plugin.attribution import LayerCAM, layercam_maps
from gradmix_plugin.models import ContrastiveClassifier, SupConLoss

LAYERS = ('backbone.layer3', 'backbone.layer4')


def build_model(gradmix=True, head=False, gamma=1.0, lambda_ssl=1.2,
                seed=0):
    torch.manual_seed(seed)
    cfg = dict(
        type='ContrastiveClassifier',
        backbone=dict(
            type='ResNet_CIFAR', depth=18, stem_channels=8,
            base_channels=8),
        neck=dict(type='GlobalAveragePooling'),
        projector=dict(
            type='ProjectionNeck', in_channels=64, hid_channels=64,
            out_channels=16),
        gamma=gamma,
        lambda_ssl=lambda_ssl,
        gradmix=dict(type='GradMix', attribution_layers=LAYERS)
        if gradmix else None,
        head=dict(type='LinearClsHead', num_classes=3, in_channels=64)
        if head else None)
    model = MODELS.build(cfg)
    model.init_weights()
    return model


def make_batch(batch_size=6, size=16, seed=0):
    generator = torch.Generator().manual_seed(seed)
    views = [
        torch.randn(batch_size, 3, size, size, generator=generator)
        for _ in range(2)
    ]
    labels = torch.arange(batch_size) % 3
    samples = [DataSample().set_gt_label(int(label)) for label in labels]
    return views, samples, labels


def total(losses):
    return sum(value for key, value in losses.items() if 'loss' in key)


def test_loss_keys_and_finite():
    model = build_model(head=True)
    views, samples, _ = make_batch()
    losses = model.loss(views, samples)
    assert set(losses) == {
        'loss_supcon', 'loss_simclr', 'loss_simclr_mix', 'loss_cls',
        'lambda_eff'
    }
    assert all(torch.isfinite(value) for value in losses.values())
    assert 0.5 <= losses['lambda_eff'] <= 1
    total(losses).backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_gradmix_step_equals_its_own_loss_and_leaves_bn_alone():
    """A GradMix step = the total loss of the same masked inputs.

    Reference: an untouched copy of the model forwards the original and the
    masked batch (the two forwards of the method), and the total loss
    gamma SupCon + lambda_ssl [SimCLR + lambda_eff SimCLR_mix] is
    back-propagated. Parameter gradients and BatchNorm statistics must be
    identical, i.e. the attribution added no gradient and no forward.
    The masked view itself is reproduced from LayerCAM maps of the SimCLR
    objective over all 2B embeddings and the same random draws.
    """
    gamma, lambda_ssl = 1.0, 1.2
    model = build_model(gamma=gamma, lambda_ssl=lambda_ssl)
    reference = copy.deepcopy(model)
    views, samples, labels = make_batch()

    recorded = {}
    mask = model.gradmix.mask

    def spy_mask(inputs, maps):
        recorded['maps'] = maps
        recorded['masked'], recorded['lambda_eff'], _ = mask(inputs, maps)
        return recorded['masked'], recorded['lambda_eff'], _

    model.gradmix.mask = spy_mask
    torch.manual_seed(123)
    total(model.loss(views, samples)).backward()
    masked_view = recorded['masked']
    assert not torch.equal(masked_view, views[0])

    # Maps: LayerCAM of SimCLR(Z) (tau 0.05, base 0.07) on [x1; x2].
    attribution_model = copy.deepcopy(reference)
    with LayerCAM(attribution_model, LAYERS).capture() as activations:
        embeds = attribution_model(torch.cat(views))
    objective = SupConLoss(0.05, 0.07)(embeds.view(2, 6, -1).transpose(0, 1))
    grads = torch.autograd.grad(objective, activations)
    maps = layercam_maps(activations, grads, (16, 16))
    torch.testing.assert_close(recorded['maps'], maps[:6])
    torch.manual_seed(123)
    expected_masked, expected_lambda, _ = reference.gradmix.mask(
        views[0], maps[:6])
    torch.testing.assert_close(masked_view, expected_masked)
    assert recorded['lambda_eff'] == expected_lambda

    loss = SupConLoss(0.05, 0.07)
    z = reference(torch.cat(views)).view(2, 6, -1).transpose(0, 1)
    z_masked = reference(torch.cat([masked_view, views[1]])).view(
        2, 6, -1).transpose(0, 1)
    reference_total = gamma * loss(z, labels) + lambda_ssl * (
        loss(z) + expected_lambda * loss(z, features_positive=z_masked))
    reference_total.backward()

    for (name, param), ref_param in zip(model.named_parameters(),
                                        reference.parameters()):
        torch.testing.assert_close(param.grad, ref_param.grad, msg=name)
    for (name, buffer), ref_buffer in zip(model.named_buffers(),
                                          reference.buffers()):
        torch.testing.assert_close(buffer, ref_buffer, msg=name)


def test_deterministic_under_seed():
    views, samples, _ = make_batch()
    results = []
    for _ in range(2):
        model = build_model(seed=3)
        torch.manual_seed(7)
        losses = model.loss(views, samples)
        total(losses).backward()
        results.append((losses, model.backbone.conv1.weight.grad))
    for key in results[0][0]:
        assert torch.equal(results[0][0][key], results[1][0][key])
    assert torch.equal(results[0][1], results[1][1])


def test_without_gradmix():
    model = build_model(gradmix=False)
    views, samples, labels = make_batch()
    losses = model.loss(views, samples)
    assert set(losses) == {'loss_supcon', 'loss_simclr'}
    z = model(torch.cat(views)).view(2, 6, -1).transpose(0, 1)
    loss = SupConLoss(0.05, 0.07)
    torch.testing.assert_close(losses['loss_supcon'], loss(z, labels))
    torch.testing.assert_close(losses['loss_simclr'], 1.2 * loss(z))


def test_self_supervised_needs_no_labels():
    model = build_model(gamma=0.0)
    views, _, _ = make_batch()
    losses = model.loss(views, [DataSample() for _ in range(6)])
    assert set(losses) == {'loss_simclr', 'loss_simclr_mix', 'lambda_eff'}
    total(losses).backward()


def test_head_trains_on_detached_features():
    model = build_model(head=True, gradmix=False)
    views, samples, _ = make_batch()
    model.loss(views, samples)['loss_cls'].backward()
    assert all(p.grad is None for p in model.backbone.parameters())
    assert all(p.grad is None for p in model.projector.parameters())
    assert model.head.fc.weight.grad.abs().sum() > 0


@pytest.mark.parametrize('head', [True, False])
def test_predict(head):
    model = build_model(head=head).eval()
    views, samples, _ = make_batch()
    with torch.no_grad():
        results = model.predict(views[0], samples)
        embeds = model(views[0], mode='tensor')
    assert len(results) == 6
    for index, sample in enumerate(results):
        assert sample.feats.shape == (64, )
        assert sample.embeds.shape == (16, )
        torch.testing.assert_close(sample.embeds.norm(), torch.tensor(1.))
        torch.testing.assert_close(sample.embeds, embeds[index])
        assert ('logits' in sample) == head
        assert ('pred_label' in sample) == head
        if head:
            assert sample.logits.shape == (3, )
            torch.testing.assert_close(sample.pred_score,
                                       sample.logits.softmax(0))
    torch.testing.assert_close(
        torch.stack([s.feats for s in results]),
        model.extract_feat(views[0]))
    assert len(model.predict(views[0])) == 6  # without data samples


def test_train_step_through_data_preprocessor():
    model = build_model(head=True)
    optim_wrapper = dict(
        type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-3))
    from mmengine.optim import build_optim_wrapper
    optim_wrapper = build_optim_wrapper(model, optim_wrapper)
    images = [
        torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8)
        for _ in range(2)
    ]
    _, samples, _ = make_batch()
    log_vars = model.train_step(
        dict(inputs=images, data_samples=samples), optim_wrapper)
    assert {'loss', 'loss_simclr_mix', 'lambda_eff'} <= set(log_vars)
    assert torch.isfinite(log_vars['loss'])


def test_bad_inputs():
    model = build_model()
    views, samples, _ = make_batch()
    with pytest.raises(ValueError, match='>= 2 views'):
        model.loss(views[0], samples)
    with pytest.raises(ValueError, match='one \\(B, C, H, W\\) view'):
        model.predict(views)
    with pytest.raises(ValueError, match='lambda_ssl'):
        build_model(lambda_ssl=0.0)
    with pytest.raises(ValueError, match='layer9'):
        MODELS.build(
            dict(
                type='ContrastiveClassifier',
                backbone=dict(type='ResNet_CIFAR', depth=18),
                gradmix=dict(
                    type='GradMix', attribution_layers=['backbone.layer9'])))
    assert isinstance(build_model(), ContrastiveClassifier)
