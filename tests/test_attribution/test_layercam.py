import numpy as np
import pytest
import torch
from pytorch_grad_cam import LayerCAM as GradCamLayerCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

import gradmix_plugin  # noqa: F401
from gradmix_plugin.attribution import LayerCAM, layercam_maps

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
