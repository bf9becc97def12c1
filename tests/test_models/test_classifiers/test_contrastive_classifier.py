import copy
import weakref

import pytest
import torch
from mmengine.optim import OptimWrapper
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from torch.nn.modules.batchnorm import _BatchNorm

from gradmix_plugin.attribution import LayerCAM, layercam_maps
from gradmix_plugin.models import ContrastiveClassifier, SupConLoss

LAYERS = ('backbone.layer3', 'backbone.layer4')


def build_model(gradmix=True, head=False, gamma=1.0, lambda_ssl=1.2,
                seed=0, **kwargs):
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
        if head else None,
        **kwargs)
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


@pytest.mark.parametrize('bn_stats', ['reference', 'single'])
def test_gradmix_step_equals_the_reference_step(bn_stats):
    """A GradMix step = the total loss of the same masked inputs.

    Reference: an untouched copy of the model forwards the original and the
    masked batch (the two forwards of the method), and the total loss
    gamma SupCon + lambda_ssl [SimCLR + lambda_eff SimCLR_mix] is
    back-propagated. Parameter gradients must be identical, i.e. the
    attribution added no gradient. The masked view itself is reproduced
    from LayerCAM maps of the SimCLR objective over all 2B embeddings and
    the same random draws. The attribution forward runs in train mode on
    the reference model itself for ``bn_stats='reference'`` (its BatchNorm
    statistics move three times, as in the reference) and on a copy for
    ``'single'`` (they move once per forward of the method).
    """
    gamma, lambda_ssl = 1.0, 1.2
    model = build_model(gamma=gamma, lambda_ssl=lambda_ssl,
                        bn_stats=bn_stats)
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
    attribution_model = reference if bn_stats == 'reference' else \
        copy.deepcopy(reference)
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
    assert model.backbone.bn1.num_batches_tracked == \
        (3 if bn_stats == 'reference' else 2)


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


def set_bn_momentum(model, momentum):
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.momentum = momentum
    return model


def reference_order_loss(model, views, samples):
    """The literal reference order, with a real third forward.

    ``model`` (``bn_stats='single'``) runs its training forward of the
    clean batch; then, before masking, the reference's separate attribution
    forward of the clean batch in train mode (LayerCAM of SimCLR, its maps
    used for the mask); then the masked forward.
    """
    mask = model.gradmix.mask

    def mask_after_attribution_forward(inputs, _):
        with LayerCAM(model, LAYERS).capture() as activations:
            embeds = model(torch.cat(views))
        objective = SupConLoss(0.05, 0.07)(
            embeds.view(2, 6, -1).transpose(0, 1))
        grads = torch.autograd.grad(objective, activations)
        return mask(inputs, layercam_maps(activations, grads, (16, 16))[:6])

    model.gradmix.mask = mask_after_attribution_forward
    try:
        return model.loss(views, samples)
    finally:
        model.gradmix.mask = mask


@pytest.mark.parametrize('momentum', [0.1, None])
def test_reference_bn_stats_over_steps_without_a_third_forward(momentum):
    models = {
        name: set_bn_momentum(
            build_model(bn_stats=bn_stats, head=True), momentum)
        for name, bn_stats in (('reference', 'reference'), ('oracle',
                                                             'single'))
    }
    optimizers = {
        name: torch.optim.SGD(model.parameters(), lr=0.1)
        for name, model in models.items()
    }
    for step in range(3):
        views, samples, _ = make_batch(seed=step)
        grads = {}
        for name, model in models.items():
            torch.manual_seed(100 + step)
            losses = reference_order_loss(model, views, samples) \
                if name == 'oracle' else model.loss(views, samples)
            total(losses).backward()
            grads[name] = [p.grad.clone() for p in model.parameters()]
            optimizers[name].step()
            optimizers[name].zero_grad()
        # Gradients unchanged: the oracle's are those of a model updating
        # its statistics once per forward (its attribution adds none).
        for grad, expected in zip(grads['reference'], grads['oracle']):
            torch.testing.assert_close(grad, expected)

    buffers = {
        name: dict(model.named_buffers())
        for name, model in models.items()
    }
    for key, value in buffers['reference'].items():
        torch.testing.assert_close(
            value, buffers['oracle'][key], rtol=1e-6, atol=1e-6, msg=key)
    assert buffers['reference']['backbone.bn1.num_batches_tracked'] == 9


def test_reference_bn_stats_without_masking_update_once():
    model = build_model()
    model.gradmix.prob = 0.0
    views, samples, _ = make_batch()
    losses = model.loss(views, samples)
    assert 'loss_simclr_mix' not in losses
    assert model.backbone.bn1.num_batches_tracked == 1


class ScaledOptimWrapper(OptimWrapper):
    """A static loss scale, undone before the step, like AmpOptimWrapper's
    (which needs a GPU)."""
    scale = 1024.0

    def backward(self, loss, **kwargs):
        (loss * self.scale).backward(**kwargs)
        self._inner_count += 1

    def step(self, **kwargs):
        for param in self.param_groups[0]['params']:
            if param.grad is not None:
                param.grad /= self.scale
        super().step(**kwargs)


def train_steps(memory, wrapper_type=OptimWrapper, accumulative_counts=1,
                steps=2, momentum=0.1):
    """``steps`` train_step calls from the same weights and random state;
    the parameters, buffers and gradients (before the first update) after
    them."""
    model = set_bn_momentum(build_model(head=True, memory=memory), momentum)
    optim_wrapper = wrapper_type(
        torch.optim.SGD(model.parameters(), lr=0.1),
        accumulative_counts=accumulative_counts)
    torch.manual_seed(5)
    first_grads = None
    for step in range(steps):
        images = [
            torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(10 * step +
                                                                  view))
            for view in range(2)
        ]
        _, samples, _ = make_batch()
        log_vars = model.train_step(
            dict(inputs=images, data_samples=samples), optim_wrapper)
        if first_grads is None:
            first_grads = [
                None if p.grad is None else p.grad.clone()
                for p in model.parameters()
            ]
    return model, first_grads, log_vars


@pytest.mark.parametrize('wrapper_type,accumulative_counts,momentum', [
    (OptimWrapper, 1, 0.1),
    (ScaledOptimWrapper, 2, None),
])
def test_lean_step_equals_the_default_step(wrapper_type, accumulative_counts,
                                           momentum):
    results = {
        memory: train_steps(memory, wrapper_type, accumulative_counts,
                            momentum=momentum)
        for memory in ('default', 'lean')
    }
    (default, default_grads, default_logs), (lean, lean_grads, lean_logs) = \
        results['default'], results['lean']
    for key, value in default_logs.items():
        torch.testing.assert_close(lean_logs[key], value, msg=key)
    if accumulative_counts > 1:  # no update after the first step
        for grad, expected in zip(lean_grads, default_grads):
            torch.testing.assert_close(grad, expected, rtol=1e-6, atol=1e-6)
    for (name, param), expected in zip(lean.named_parameters(),
                                       default.parameters()):
        torch.testing.assert_close(param, expected, rtol=1e-6, atol=1e-6,
                                   msg=name)
    for (name, buffer), expected in zip(lean.named_buffers(),
                                        default.buffers()):
        torch.testing.assert_close(buffer, expected, rtol=1e-6, atol=1e-6,
                                   msg=name)
    assert lean.backbone.bn1.num_batches_tracked == 6


class SavedTensor:
    """Holds a tensor saved for backward; freed with its graph."""

    def __init__(self, tensor):
        self.tensor = tensor


def saved_tensor_peak(step):
    """Peak bytes of the tensors saved for backward alive at once."""
    live = dict(now=0, peak=0)

    def release(size):
        live['now'] -= size

    def pack(tensor):
        holder = SavedTensor(tensor)
        size = tensor.numel() * tensor.element_size()
        live['now'] += size
        live['peak'] = max(live['peak'], live['now'])
        weakref.finalize(holder, release, size)
        return holder

    with torch.autograd.graph.saved_tensors_hooks(pack,
                                                  lambda h: h.tensor):
        step()
    return live['peak']


def test_lean_step_holds_one_graph_at_a_time():
    views, samples, _ = make_batch()
    data = dict(inputs=[(255 * v.sigmoid()).byte() for v in views],
                data_samples=samples)

    def train_step(**kwargs):
        model = build_model(**kwargs)
        optim_wrapper = OptimWrapper(
            torch.optim.SGD(model.parameters(), lr=0.1))
        return lambda: model.train_step(data, optim_wrapper)

    peaks = {
        name: saved_tensor_peak(train_step(**kwargs))
        for name, kwargs in (('default', {}), ('lean', dict(memory='lean')),
                             ('plain', dict(gradmix=False)))
    }
    assert peaks['default'] > 1.8 * peaks['plain']
    assert peaks['lean'] < 1.2 * peaks['plain']


def test_lean_loss_outside_train_step_runs_the_default_step():
    lean, default = build_model(memory='lean'), build_model()
    views, samples, _ = make_batch()
    for model in (lean, default):
        torch.manual_seed(1)
        total(model.loss(views, samples)).backward()
    for param, expected in zip(lean.parameters(), default.parameters()):
        torch.testing.assert_close(param.grad, expected.grad)
    assert lean._warned_lean and not default._warned_lean  # warned once


def test_bad_bn_stats_and_memory():
    with pytest.raises(ValueError, match="'twice'.*'reference', 'single'"):
        build_model(bn_stats='twice')
    with pytest.raises(ValueError, match="'low'.*'default', 'lean'"):
        build_model(memory='low')


def supcontrast_style_mix(features, features_positive, tau=0.05, base=0.07):
    """SimCLR_mix in the arithmetic of SupContrast-style code: the positive
    logits (from ``features_positive``) and the denominator logits (from
    ``features``) each shifted by their own detached row maximum. The
    inputs are L2-normalised first, as the reference's network does."""
    num_samples = features.shape[0]
    normalize = torch.nn.functional.normalize
    contrast = normalize(torch.cat(features.unbind(1)), dim=-1)
    positive = normalize(torch.cat(features_positive.unbind(1)), dim=-1)
    logits = contrast @ contrast.T / tau
    logits = logits - logits.max(1, keepdim=True)[0].detach()
    positive_logits = contrast @ positive.T / tau
    positive_logits = positive_logits - positive_logits.max(
        1, keepdim=True)[0].detach()
    not_self = 1 - torch.eye(2 * num_samples)
    positive_mask = torch.eye(num_samples).repeat(2, 2) * not_self
    log_prob = positive_logits - torch.log(
        (logits.exp() * not_self).sum(1, keepdim=True))
    return -(tau / base) * (
        (positive_mask * log_prob).sum(1) / positive_mask.sum(1)).mean()


def test_logged_mix_term_differs_from_supcontrast_by_a_detached_offset():
    """The documented offset of the reference's logged SimCLR_mix."""
    generator = torch.Generator().manual_seed(0)
    z = torch.nn.functional.normalize(
        torch.randn(6, 2, 16, generator=generator), dim=-1).requires_grad_()
    z_masked = (z.detach() + 0.3 * torch.randn(
        6, 2, 16, generator=generator)).requires_grad_()
    plugin = SupConLoss(0.05, 0.07)(z, features_positive=z_masked)
    reference = supcontrast_style_mix(z, z_masked)
    with torch.no_grad():
        contrast = torch.cat(z.unbind(1))
        row_max = (contrast @ contrast.T).max(1)[0] / 0.05
        positive = torch.nn.functional.normalize(
            torch.cat(z_masked.unbind(1)), dim=-1)
        positive_max = (contrast @ positive.T).max(1)[0] / 0.05
        offset = 0.05 / 0.07 * (row_max - positive_max).mean()
    assert offset > 0.1  # the reference's curve sits below
    torch.testing.assert_close(reference, plugin - offset)
    grads = torch.autograd.grad(plugin, (z, z_masked))
    reference_grads = torch.autograd.grad(reference, (z, z_masked))
    for grad, expected in zip(grads, reference_grads):
        torch.testing.assert_close(grad, expected)
