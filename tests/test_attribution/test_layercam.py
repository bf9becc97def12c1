import contextlib
import copy

import numpy as np
import pytest
import torch
from backbone_helpers import ce_model, contrastive_model
from mmpretrain.structures import DataSample
from pytorch_grad_cam import LayerCAM as GradCamLayerCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

import gradmix_plugin  # noqa: F401
from gradmix_plugin.attribution import (
    AttributionLayerError,
    LayerCAM,
    layercam_maps,
)

NUM_CLASSES = 5


def per_image_minmax(maps: np.ndarray) -> np.ndarray:
    low = maps.min(axis=(1, 2), keepdims=True)
    high = maps.max(axis=(1, 2), keepdims=True)
    return (maps - low) / (high - low)


@pytest.mark.parametrize('layer', ['backbone.layer3', 'backbone.layer4'])
def test_maps_equal_pytorch_grad_cam(layer, build_classifier):
    """Oracle: pytorch-grad-cam's LayerCAM on the same model, layer, target.

    grad-cam normalises every image by its own min-max, resizes with
    ``cv2.resize`` (bilinear, half-pixel centres like ``align_corners=False``)
    and min-max normalises again after averaging layers. Our maps are
    normalised over the whole batch instead, which for one layer is an
    affine map shared by all images. Min-max normalisation is invariant to
    positive affine maps and bilinear resizing commutes with them, so
    per-image min-max normalised maps at the input size must agree (up to
    the oracle's 1e-7 epsilon and float32 rounding).
    """
    model = build_classifier(NUM_CLASSES, random_bn=True)
    inputs = torch.randn(6, 3, 16, 16)
    targets = torch.tensor([0, 1, 2, 3, 4, 2])

    ours = LayerCAM(model, [layer])(inputs, 'label', targets).numpy()

    module = dict(model.named_modules())[layer]
    with GradCamLayerCAM(model=model, target_layers=[module]) as oracle:
        expected = oracle(
            input_tensor=inputs,
            targets=[ClassifierOutputTarget(int(t)) for t in targets])

    assert ours.shape == expected.shape == (6, 16, 16)
    np.testing.assert_allclose(
        per_image_minmax(ours), per_image_minmax(expected), atol=2e-5)


def test_layercam_maps_brute_force():
    """Whole-batch min-max per layer, bilinear upsampling, sum of layers."""
    generator = torch.Generator().manual_seed(1)
    acts = [torch.rand(3, 4, 4, 4, generator=generator),
            torch.rand(3, 6, 2, 2, generator=generator)]
    grads = [torch.randn(a.shape, generator=generator) for a in acts]
    maps = layercam_maps(acts, grads, (8, 8))

    expected = np.zeros((3, 8, 8))
    for act, grad in zip(acts, grads):
        act, grad = act.double().numpy(), grad.double().numpy()
        layer_map = np.zeros(act.shape[:1] + act.shape[2:])
        for b in range(act.shape[0]):
            for c in range(act.shape[1]):
                layer_map[b] += act[b, c] * np.maximum(grad[b, c], 0)
        layer_map = (layer_map - layer_map.min()) / (
            layer_map.max() - layer_map.min() + 1e-8)
        # Bilinear, half-pixel centres, edge clamped (align_corners=False).
        size = act.shape[-1]
        scale = size / 8
        up = np.zeros((act.shape[0], 8, 8))
        for i in range(8):
            for j in range(8):
                y = min(max((i + 0.5) * scale - 0.5, 0), size - 1)
                x = min(max((j + 0.5) * scale - 0.5, 0), size - 1)
                y0, x0 = int(np.floor(y)), int(np.floor(x))
                y1, x1 = min(y0 + 1, size - 1), min(x0 + 1, size - 1)
                wy, wx = y - y0, x - x0
                up[:, i, j] = ((1 - wy) * (1 - wx) * layer_map[:, y0, x0] +
                               (1 - wy) * wx * layer_map[:, y0, x1] +
                               wy * (1 - wx) * layer_map[:, y1, x0] +
                               wy * wx * layer_map[:, y1, x1])
        expected += up
    assert maps.dtype == torch.float32 and not maps.requires_grad
    np.testing.assert_allclose(maps.numpy(), expected, atol=1e-5)


def test_all_zero_map_is_zero_not_nan():
    acts = [torch.zeros(2, 3, 4, 4)]
    grads = [torch.ones(2, 3, 4, 4)]
    maps = layercam_maps(acts, grads, (8, 8))
    assert torch.equal(maps, torch.zeros(2, 8, 8))


def test_layercam_maps_bad_input():
    with pytest.raises(ValueError, match='one gradient per activation'):
        layercam_maps([torch.rand(1, 2, 2, 2)], [], (4, 4))
    with pytest.raises(ValueError, match=r'\(1, 2, 2, 2\)'):
        layercam_maps([torch.rand(1, 2, 2, 2)], [torch.rand(1, 2, 3, 3)],
                      (4, 4))
    tokens = torch.rand(2, 65, 8)
    with pytest.raises(ValueError,
                       match=r'\(2, 65, 8\) are not a \(B, C, h, w\) map.*'
                       'LayerCAM.capture'):
        layercam_maps([tokens], [tokens], (4, 4))


def test_no_parameter_gradient_no_bn_update_flags_restored(build_classifier):
    model = build_classifier(NUM_CLASSES, random_bn=True)
    model.train()
    model.backbone.layer1.eval()  # a mixed state must come back as it was
    flags = {name: m.training for name, m in model.named_modules()}
    state = {k: v.clone() for k, v in model.state_dict().items()}

    LayerCAM(model, ['backbone.layer3', 'backbone.layer4'])(
        torch.randn(4, 3, 16, 16), 'label', torch.tensor([0, 1, 2, 3]))

    assert all(p.grad is None for p in model.parameters())
    assert flags == {name: m.training for name, m in model.named_modules()}
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_eval_mode_during_attribution_and_restore_on_error(build_classifier):
    model = build_classifier(NUM_CLASSES, random_bn=True)
    model.train()
    seen = []

    def spy(module, args, output):
        seen.append(module.training)
        raise RuntimeError('boom')

    cam = LayerCAM(model, ['backbone.layer3'])  # its probe runs here
    model.backbone.layer2.register_forward_hook(spy)
    with pytest.raises(RuntimeError, match='boom'):
        cam(torch.randn(2, 3, 16, 16), 'pred')
    assert seen == [False]
    assert all(m.training for m in model.modules())
    assert len(model.backbone.layer3._forward_hooks) == 0


def test_pred_objective_is_label_of_argmax(build_classifier):
    model = build_classifier(NUM_CLASSES, random_bn=True).eval()
    inputs = torch.randn(4, 3, 16, 16)
    cam = LayerCAM(model, ['backbone.layer3', 'backbone.layer4'])
    predicted = model(inputs, mode='tensor').argmax(dim=1)
    torch.testing.assert_close(
        cam(inputs, 'pred'), cam(inputs, 'label', predicted))


def test_frozen_parameters_still_give_maps(build_classifier):
    model = build_classifier(NUM_CLASSES, random_bn=True)
    for param in model.parameters():
        param.requires_grad_(False)
    maps = LayerCAM(model, ['backbone.layer3'])(
        torch.randn(2, 3, 16, 16), 'label', torch.tensor([0, 1]))
    assert maps.shape == (2, 16, 16) and maps.max() > 0


def test_autocast_maps_are_float32_and_close(build_classifier):
    model = build_classifier(NUM_CLASSES, random_bn=True)
    inputs = torch.randn(4, 3, 16, 16)
    targets = torch.tensor([0, 1, 2, 3])
    cam = LayerCAM(model, ['backbone.layer3', 'backbone.layer4'])
    reference = cam(inputs, 'label', targets)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        mixed = cam(inputs, 'label', targets)
    assert mixed.dtype == torch.float32
    assert torch.isfinite(mixed).all()
    # bfloat16 keeps about 3 significant digits.
    assert (mixed - reference).abs().mean() < 0.1


def test_capture_records_outputs_and_removes_hooks(build_classifier):
    model = build_classifier(NUM_CLASSES, random_bn=True).eval()
    inputs = torch.randn(2, 3, 16, 16)
    cam = LayerCAM(model, ['backbone.layer3', 'backbone.layer4'])
    with cam.capture() as activations:
        model(inputs, mode='tensor')
    layer3 = model.backbone.layer3
    layer4 = model.backbone.layer4
    assert len(layer3._forward_hooks) == len(layer4._forward_hooks) == 0
    with torch.no_grad():
        x = model.backbone.relu(model.backbone.norm1(
            model.backbone.conv1(inputs)))
        x = model.backbone.layer2(model.backbone.layer1(x))
        out3 = layer3(x)
        out4 = layer4(out3)
    torch.testing.assert_close(activations[0], out3)
    torch.testing.assert_close(activations[1], out4)


def test_bad_arguments(build_classifier):
    model = build_classifier(NUM_CLASSES, random_bn=True)
    with pytest.raises(ValueError, match="'backbone.layer5'.*backbone.layer4"):
        LayerCAM(model, ['backbone.layer3', 'backbone.layer5'])
    cam = LayerCAM(model, ['backbone.layer3'])
    with pytest.raises(ValueError, match="'contrastive'"):
        cam(torch.randn(1, 3, 16, 16), 'contrastive')
    with pytest.raises(ValueError, match='targets'):
        cam(torch.randn(1, 3, 16, 16), 'label')
    with pytest.raises(TypeError, match='backbone'):
        LayerCAM(model, ['backbone'])(torch.randn(1, 3, 16, 16), 'pred')


# ----------------------------------------------------------------------
# token sequences and channels-last maps
# ----------------------------------------------------------------------
def tokens_to_map(extra, grid):
    """pytorch-grad-cam's reshape_transform for (B, N, C) tokens."""

    def reshape(tokens):
        batch_size, _, channels = tokens.shape
        return tokens[:, extra:].reshape(batch_size, *grid,
                                         channels).permute(0, 3, 1, 2)

    return reshape


def grad_cam_maps(model, module, inputs, targets, reshape_transform):
    with GradCamLayerCAM(model=model, target_layers=[module],
                         reshape_transform=reshape_transform) as oracle:
        return oracle(
            input_tensor=inputs,
            targets=[ClassifierOutputTarget(int(t)) for t in targets])


TOKEN_CASES = {
    # family, layer, pytorch-grad-cam reshape_transform
    'vit-layer0': ('vit', 'backbone.layers.0', tokens_to_map(1, (8, 8))),
    'vit-layer1': ('vit', 'backbone.layers.1', tokens_to_map(1, (8, 8))),
    'deit-layer2': ('deit', 'backbone.layers.2', tokens_to_map(2, (8, 8))),
    'swin-stage2-block': ('swin', 'backbone.stages.2.blocks.1',
                          tokens_to_map(0, (4, 4))),
    'timm-vit-block': ('timm_vit', 'backbone.timm_model.model.blocks.1',
                       tokens_to_map(1, (8, 8))),
}


@pytest.mark.parametrize('case', TOKEN_CASES)
def test_token_maps_equal_pytorch_grad_cam(case):
    """Oracle on tokens: grad-cam with the reshape_transform of the layer
    (class / distillation tokens dropped, the patch grid of the backbone),
    the same normalisation argument as the ResNet oracle above."""
    family, layer, reshape = TOKEN_CASES[case]
    model = ce_model(family)
    model.init_weights()
    inputs = torch.randn(6, 3, 32, 32)
    targets = torch.tensor([0, 1, 2, 0, 1, 2])

    ours = LayerCAM(model, [layer])(inputs, 'label', targets).numpy()
    expected = grad_cam_maps(model, dict(model.named_modules())[layer],
                             inputs, targets, reshape)

    assert ours.shape == expected.shape == (6, 32, 32)
    np.testing.assert_allclose(
        per_image_minmax(ours), per_image_minmax(expected), atol=2e-5)


def test_channels_last_maps_equal_pytorch_grad_cam():
    """timm's Swin declares output_fmt='NHWC': its stages are detected as
    (B, h, w, C) maps."""
    timm = pytest.importorskip('timm')
    torch.manual_seed(0)
    model = timm.create_model(
        'swin_tiny_patch4_window7_224', img_size=32, patch_size=2,
        window_size=2, embed_dim=16, depths=(1, 1, 1, 1),
        num_heads=(1, 1, 1, 1), num_classes=NUM_CLASSES)
    inputs = torch.randn(4, 3, 32, 32)
    targets = torch.tensor([0, 1, 2, 3]) % 3
    cam = LayerCAM(model, ['layers.2'])
    assert cam.layouts == ['nhwc']
    ours = cam(inputs, 'label', targets).numpy()
    expected = grad_cam_maps(model, model.layers[2], inputs, targets,
                             lambda x: x.permute(0, 3, 1, 2))
    np.testing.assert_allclose(
        per_image_minmax(ours), per_image_minmax(expected), atol=2e-5)


def test_layout_override_for_a_channels_last_module():
    """Inside a ConvNeXt block the pointwise convolutions are channels-last
    Linear layers: dict(layout='nhwc') overrides the 4-D default 'nchw'."""
    model = ce_model('convnext')
    model.init_weights()
    layer = 'backbone.stages.2.0.pointwise_conv2'
    inputs = torch.randn(4, 3, 32, 32)
    targets = torch.tensor([0, 1, 2, 0])
    ours = LayerCAM(model, [dict(name=layer, layout='nhwc')])(
        inputs, 'label', targets).numpy()
    expected = grad_cam_maps(model, dict(model.named_modules())[layer],
                             inputs, targets, lambda x: x.permute(0, 3, 1, 2))
    np.testing.assert_allclose(
        per_image_minmax(ours), per_image_minmax(expected), atol=2e-5)


def test_explicit_grid_and_extra_tokens_equal_detected():
    model = ce_model('deit')
    inputs = torch.randn(2, 3, 32, 32)
    detected = LayerCAM(model, ['backbone.layers.1'])
    given = LayerCAM(model, [dict(name='backbone.layers.1', layout='nlc',
                                  grid=(8, 8), extra_tokens=2)])
    assert detected.layouts == given.layouts == [
        'nlc, 2 extra token(s), grid (8, 8)'
    ]
    torch.testing.assert_close(
        detected(inputs, 'pred'), given(inputs, 'pred'), rtol=0, atol=0)


def test_token_capture_changes_neither_outputs_nor_gradients():
    """The forward continues through the recorded map: logits and parameter
    gradients are bit-for-bit those of a forward without capture."""
    model = ce_model('deit').train()
    inputs = torch.randn(2, 3, 32, 32)
    cam = LayerCAM(model, ['backbone.layers.0', 'backbone.layers.1'])

    def logits_and_grads(capture):
        model.zero_grad()
        with cam.capture() if capture else contextlib.nullcontext():
            logits = model(inputs, mode='tensor')
        logits.square().sum().backward()
        return logits.detach(), [p.grad.clone() for p in model.parameters()]

    plain_logits, plain_grads = logits_and_grads(False)
    logits, grads = logits_and_grads(True)
    assert torch.equal(logits, plain_logits)
    assert all(torch.equal(a, b) for a, b in zip(grads, plain_grads))


def test_contrastive_token_maps_equal_independent_autograd():
    """The contrastive mode on a ViT: the maps GradMix masks with are
    LayerCAM of SimCLR(Z) on the raw (B, N, C) layer outputs, computed here
    with plain autograd on a copy and reshaped by hand."""
    model = contrastive_model('vit').train()
    layers = model.gradmix.attribution_layers
    reference = copy.deepcopy(model)
    views = [torch.randn(4, 3, 32, 32) for _ in range(2)]
    samples = [DataSample().set_gt_label(i % 3) for i in range(4)]
    recorded = {}
    mask = model.gradmix.mask

    def spy_mask(inputs, maps):
        recorded['maps'] = maps
        return mask(inputs, maps)

    model.gradmix.mask = spy_mask
    model.loss(views, samples)

    outputs = {}
    modules = dict(reference.named_modules())
    for name in layers:
        modules[name].register_forward_hook(
            lambda module, args, out, name=name: outputs.update({name: out}))
    embeds = reference(torch.cat(views)).view(2, 4, -1).transpose(0, 1)
    tokens = [outputs[name] for name in layers]
    grads = torch.autograd.grad(reference.attribution_loss(embeds), tokens)
    expected = torch.zeros(8, 32, 32)
    for act, grad in zip(tokens, grads):
        act, grad = act[:, 1:].detach(), grad[:, 1:]  # class token dropped
        layer_map = (act * grad.clamp(min=0)).sum(-1).clamp(min=0)
        layer_map = (layer_map - layer_map.min()) / (
            layer_map.max() - layer_map.min() + 1e-8)
        expected += torch.nn.functional.interpolate(
            layer_map.view(8, 1, 8, 8), size=(32, 32), mode='bilinear')[:, 0]
    torch.testing.assert_close(recorded['maps'], expected[:4])


def test_layercam_maps_relu_of_signed_sum():
    """LayerCAM's outer ReLU: negative channel sums are 0 before the
    normalisation (they only occur with signed activations)."""
    acts = [torch.tensor([[[[1.0, -3.0]], [[1.0, 0.0]]]])]  # (1, 2, 1, 2)
    grads = [torch.ones(1, 2, 1, 2)]
    maps = layercam_maps(acts, grads, (1, 2))
    torch.testing.assert_close(maps, torch.tensor([[[1.0, 0.0]]]))


# ----------------------------------------------------------------------
# refused outputs: a clear error when the model is attached
# ----------------------------------------------------------------------
def test_tuple_output_fails_at_construction_with_the_choices():
    model = ce_model('swin')
    with pytest.raises(
            AttributionLayerError,
            match=r"'backbone.stages.2' \(SwinBlockSequence\) returned tuple "
            r'\(Tensor \(1, 16, 64\), tuple \(int, int\)\); accepted is a '
            r'Tensor.*\(B, N, C\).*backbone.stages.2.blocks'):
        LayerCAM(model, ['backbone.stages.2'])


def test_pooled_vector_fails_at_construction():
    model = ce_model('resnet50')
    with pytest.raises(
            AttributionLayerError,
            match=r"'neck' \(GlobalAveragePooling\) returned tuple \(Tensor "
            r'\(1, 64\)\).*before the pooling'):
        LayerCAM(model, ['neck'])
    with pytest.raises(AttributionLayerError,
                       match=r"'head.fc' \(Linear\) returned Tensor \(1, 3\)"
                       '.*before the pooling'):
        LayerCAM(model, ['head.fc'])


def test_contrastive_classifier_refuses_a_tuple_layer_when_built():
    with pytest.raises(AttributionLayerError, match='backbone.stages.3'):
        contrastive_model('swin', layers=['backbone.stages.3'])


def test_token_count_mismatch_names_tokens_grid_and_fix():
    model = ce_model('vit')
    with pytest.raises(AttributionLayerError,
                       match=r"'backbone.layers.0' outputs 65 tokens.*"
                       r'2 extra token\(s\) \(given\).*make 66'):
        LayerCAM(model, [dict(name='backbone.layers.0', extra_tokens=2)])
    cam = LayerCAM(model, ['backbone.layers.0'])
    with pytest.raises(AttributionLayerError,
                       match=r'145 tokens.*patch grid \(8, 8\) \(Vision'
                       r'Transformer.patch_resolution\).*grid=\(h, w\)'):
        cam(torch.randn(1, 3, 48, 48), 'pred')


def test_layout_and_entry_errors():
    model = ce_model('vit')
    with pytest.raises(AttributionLayerError, match="layout 'nchw'.*65, 32"):
        LayerCAM(model, [dict(name='backbone.layers.0', layout='nchw')])
    with pytest.raises(ValueError, match=r"unknown layout 'nlhc'"):
        LayerCAM(model, [dict(name='backbone.layers.0', layout='nlhc')])
    with pytest.raises(ValueError, match=r"unknown: \['gird'\]"):
        LayerCAM(model, [dict(name='backbone.layers.0', gird=(8, 8))])
    with pytest.raises(ValueError, match=r'grid must be two positive ints'):
        LayerCAM(model, [dict(name='backbone.layers.0', grid=(8, ))])
    with pytest.raises(ValueError,
                       match=r"\['backbone.layer.0'\].*backbone.layers.0"):
        LayerCAM(model, ['backbone.layer.0'])  # a typo in the name
