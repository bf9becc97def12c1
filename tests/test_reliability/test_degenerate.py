"""Degenerate training data in GradMix training steps.

The documented box rule (``GradMix`` class note): the box is centred on
the first arg-max of the row-major flattened map (so an all-zero or
constant map puts it at the top-left corner), has sides
``floor(H * sqrt(1 - lambda))`` and covers ``[c - s // 2, c + s // 2)``,
clipped to the image. The expected boxes below are computed from the
recorded maps with numpy's ``argmax`` (which also returns the first
maximum).
"""
import math

import numpy as np
import pytest
import torch
from mmengine.optim import OptimWrapper
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample
from reliability_helpers import LAYERS, ce_gradmix_model, contrastive_model

from gradmix_plugin.engine.hooks.gradmix_model_hook import (
    find_gradmix_augments,
)


def record_masking(gradmix):
    """Wrap ``gradmix`` so every draw, map and box is recorded."""
    calls = []
    sample_lambda, mask = gradmix.sample_lambda, gradmix.mask

    def recording_sample_lambda():
        calls.append(dict(lam=sample_lambda()))
        return calls[-1]['lam']

    def recording_mask(inputs, maps):
        masked, lambda_eff, boxes = mask(inputs, maps)
        calls[-1].update(
            inputs=inputs, maps=maps, masked=masked, boxes=boxes,
            lambda_eff=lambda_eff)
        return masked, lambda_eff, boxes

    gradmix.sample_lambda = recording_sample_lambda
    gradmix.mask = recording_mask
    return calls


def expected_boxes(maps, lam):
    """The documented rule, from the maps with numpy."""
    maps = maps.numpy()
    _, height, width = maps.shape
    side_h = math.floor(height * math.sqrt(1 - lam))
    side_w = math.floor(width * math.sqrt(1 - lam))
    boxes = []
    for image_map in maps:
        cy, cx = divmod(int(np.argmax(image_map)), width)
        boxes.append([
            min(max(cy - side_h // 2, 0), height),
            min(max(cx - side_w // 2, 0), width),
            min(max(cy + side_h // 2, 0), height),
            min(max(cx + side_w // 2, 0), width)
        ])
    return np.array(boxes)


def contrastive_step(model, images):
    """One training loss + backward of two identical views."""
    views = [images.float(), images.float()]
    data = model.data_preprocessor(
        dict(
            inputs=views,
            data_samples=[
                DataSample().set_gt_label(i % 2)
                for i in range(images.shape[0])
            ]),
        training=True)
    losses = model.loss(data['inputs'], data['data_samples'])
    total = sum(v for k, v in losses.items() if k.startswith('loss'))
    model.zero_grad()
    total.backward()
    return losses


def build_contrastive():
    torch.manual_seed(0)
    model = MODELS.build(
        contrastive_model(
            gradmix=dict(
                type='GradMix', attribution_layers=LAYERS, fill='noise')))
    model.train()
    return model


def assert_finite_step(model, losses):
    for name, value in losses.items():
        assert torch.isfinite(value).all(), name
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


def test_all_zero_maps_give_top_left_box_and_finite_losses():
    model = build_contrastive()
    # Dead ReLUs: a very negative bias after the last convolution of every
    # block of the attributed stages zeroes their outputs.
    for name, module in model.named_modules():
        if name.startswith(tuple(LAYERS)) and name.endswith('bn2'):
            torch.nn.init.constant_(module.bias, -1e4)
    calls = record_masking(model.gradmix)
    images = torch.randint(0, 256, (4, 3, 16, 16), dtype=torch.uint8)
    losses = contrastive_step(model, images)

    call, = calls
    assert torch.count_nonzero(call['maps']) == 0
    boxes = call['boxes'].numpy()
    np.testing.assert_array_equal(boxes, expected_boxes(call['maps'],
                                                         call['lam']))
    half = math.floor(16 * math.sqrt(1 - call['lam'])) // 2
    np.testing.assert_array_equal(boxes, [[0, 0, half, half]] * 4)
    # Only the top-left box changed (noise fill).
    changed = (call['masked'] != call['inputs']).any(dim=1)
    assert changed[:, half:, :].sum() == changed[:, :, half:].sum() == 0
    assert changed[:, :half, :half].float().mean() > 0.9
    assert_finite_step(model, losses)


def test_constant_images_follow_box_rule_with_finite_losses():
    model = build_contrastive()
    calls = record_masking(model.gradmix)
    values = torch.tensor([0, 17, 128, 255], dtype=torch.uint8)
    images = values.view(4, 1, 1, 1).expand(4, 3, 16, 16).contiguous()
    losses = contrastive_step(model, images)

    call, = calls
    assert torch.isfinite(call['maps']).all()
    np.testing.assert_array_equal(call['boxes'].numpy(),
                                  expected_boxes(call['maps'], call['lam']))
    assert_finite_step(model, losses)


def ce_train_step(images, labels):
    torch.manual_seed(0)
    model = MODELS.build(ce_gradmix_model())
    gradmix, = find_gradmix_augments(model)
    gradmix.attach_model(model)
    optim_wrapper = OptimWrapper(
        torch.optim.SGD(model.parameters(), lr=0.1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = dict(
        inputs=list(images),
        data_samples=[DataSample().set_gt_label(int(y)) for y in labels])
    log_vars = model.train_step(data, optim_wrapper)
    assert torch.isfinite(log_vars['loss'])
    after = model.state_dict()
    assert all(torch.isfinite(v).all() for v in after.values())
    assert not torch.equal(before['head.fc.weight'], after['head.fc.weight'])
    return model, gradmix


def test_ce_gradmix_batch_of_one():
    images = torch.randint(0, 256, (1, 3, 16, 16), dtype=torch.uint8)
    ce_train_step(images, [1])


@pytest.mark.parametrize('size', [1, 2, 3])
def test_ce_gradmix_images_smaller_than_the_box(size):
    # Tiny images: the stages' maps are 1x1 and the box side
    # floor(size * sqrt(1 - lambda)) is 0 or 1 pixel.
    images = torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8)
    ce_train_step(images, [0, 1])


@pytest.mark.parametrize('size', [1, 2])
def test_mask_on_tiny_images_stays_inside(size):
    model = build_contrastive()
    calls = record_masking(model.gradmix)
    images = torch.randint(0, 256, (2, 3, size, size), dtype=torch.uint8)
    losses = contrastive_step(model, images)
    call, = calls
    boxes = call['boxes'].numpy()
    assert (boxes >= 0).all() and (boxes <= size).all()
    np.testing.assert_array_equal(boxes,
                                  expected_boxes(call['maps'], call['lam']))
    side = math.floor(size * math.sqrt(1 - call['lam']))
    assert call['lambda_eff'] == pytest.approx(1 - side * side / size**2)
    assert_finite_step(model, losses)
