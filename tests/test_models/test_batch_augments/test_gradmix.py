import copy
import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import load_tool
from mmpretrain.registry import BATCH_AUGMENTS, MODELS
from scipy import stats

import gradmix_plugin  # noqa: F401
from gradmix_plugin.attribution import LayerCAM
from gradmix_plugin.models.batch_augments import GradMix

LAYERS = ('backbone.layer3', 'backbone.layer4')


def record_lambdas(gradmix: GradMix) -> list:
    """Spy on the ratio draws of ``gradmix`` (the draws are unchanged)."""
    drawn = []
    sample_lambda = gradmix.sample_lambda

    def spy():
        drawn.append(sample_lambda())
        return drawn[-1]

    gradmix.sample_lambda = spy
    return drawn


def expected_boxes(maps: torch.Tensor, lam: float):
    """The reference geometry, written independently with python ints."""
    _, height, width = maps.shape
    side_h = int(height * np.sqrt(1 - lam))
    side_w = int(width * np.sqrt(1 - lam))
    boxes = []
    for image_map in maps.numpy():
        cy, cx = np.unravel_index(np.argmax(image_map), image_map.shape)
        boxes.append((max(cy - side_h // 2, 0), max(cx - side_w // 2, 0),
                      min(cy + side_h // 2, height),
                      min(cx + side_w // 2, width)))
    return boxes, 1 - side_h * side_w / (height * width)


def peaked_maps(height, width, peaks, seed=0):
    generator = torch.Generator().manual_seed(seed)
    maps = torch.rand(len(peaks), height, width, generator=generator)
    for index, (y, x) in enumerate(peaks):
        maps[index, y, x] = 2.0
    return maps


@pytest.mark.parametrize('seed', range(4))
@pytest.mark.parametrize('size', [(16, 16), (12, 20)])
def test_box_geometry_and_lambda_eff(seed, size):
    height, width = size
    peaks = [(0, 0), (height - 1, width - 1), (height // 2, width // 2),
             (2, width - 3), (height - 2, 1)]
    maps = peaked_maps(height, width, peaks, seed)
    inputs = torch.randn(len(peaks), 3, height, width)
    gradmix = GradMix()
    drawn = record_lambdas(gradmix)

    torch.manual_seed(seed)
    masked, lambda_eff, boxes = gradmix.mask(inputs, maps)

    (lam, ) = drawn
    assert 0.5 <= lam <= 0.9
    boxes_expected, lambda_expected = expected_boxes(maps, lam)
    assert lambda_eff == pytest.approx(lambda_expected, abs=1e-12)
    assert boxes.dtype == torch.long
    assert [tuple(b) for b in boxes.tolist()] == boxes_expected
    for image, (y1, x1, y2, x2) in enumerate(boxes_expected):
        inside = torch.zeros(height, width, dtype=torch.bool)
        inside[y1:y2, x1:x2] = True
        # Outside the box: untouched, bit for bit.
        assert torch.equal(masked[image][:, ~inside],
                           inputs[image][:, ~inside])
        # Inside: one U[0, 1) noise plane shared by all channels.
        patch = masked[image][:, inside]
        assert torch.equal(patch, patch[:1].expand_as(patch))
        assert patch.numel() == 0 or (0 <= patch.min() and patch.max() < 1)
    # The inputs are not modified in place.
    assert not torch.equal(masked, inputs)


def test_lambda_distribution_matches_scipy_beta():
    torch.manual_seed(0)
    gradmix = GradMix(alpha=2.0, lambda_min=0.5, lambda_range=0.4)
    draws = np.array([gradmix.sample_lambda() for _ in range(3000)])
    assert draws.min() >= 0.5 and draws.max() <= 0.9
    result = stats.kstest((draws - 0.5) / 0.4, stats.beta(2.0, 2.0).cdf)
    assert result.pvalue > 1e-3


def test_deterministic_under_seed_and_noise_differs_per_image():
    maps = peaked_maps(16, 16, [(8, 8)] * 4)
    inputs = torch.zeros(4, 3, 16, 16)
    outputs = []
    for _ in range(2):
        torch.manual_seed(123)
        outputs.append(GradMix().mask(inputs, maps))
    assert torch.equal(outputs[0][0], outputs[1][0])
    assert outputs[0][1] == outputs[1][1]
    assert torch.equal(outputs[0][2], outputs[1][2])
    # Same box everywhere, but an independent noise plane per image.
    masked = outputs[0][0]
    assert not torch.equal(masked[0], masked[1])


def test_all_zero_map_batch_of_one_and_tiny_images():
    # All-zero map: ties resolve to the first pixel -> top-left box.
    gradmix = GradMix()
    drawn = record_lambdas(gradmix)
    masked, lambda_eff, boxes = gradmix.mask(
        torch.randn(1, 3, 16, 16), torch.zeros(1, 16, 16))
    side = int(16 * math.sqrt(1 - drawn[0]))
    assert boxes.tolist() == [[0, 0, side // 2, side // 2]]
    assert torch.isfinite(masked).all()
    assert lambda_eff == pytest.approx(1 - side * side / 256)

    # Box larger than the image on both sides (lambda = 0, s = H): clipped.
    gradmix = GradMix(lambda_min=0.0, lambda_range=0.0)
    maps = peaked_maps(3, 5, [(1, 2), (0, 4)])
    masked, lambda_eff, boxes = gradmix.mask(torch.randn(2, 3, 3, 5), maps)
    assert [tuple(b) for b in boxes.tolist()] == expected_boxes(maps, 0.0)[0]
    assert lambda_eff == 0.0

    # 1x1 images: s = 1 gives the empty box [c - 0, c + 0).
    inputs = torch.randn(2, 3, 1, 1)
    masked, lambda_eff, boxes = gradmix.mask(inputs, torch.zeros(2, 1, 1))
    assert torch.equal(masked, inputs) and boxes.tolist() == [[0, 0, 0, 0]] * 2


def test_mean_fill():
    maps = peaked_maps(16, 16, [(3, 4), (10, 12)])
    inputs = torch.randn(2, 3, 16, 16)
    masked, _, boxes = GradMix(fill='mean').mask(inputs, maps)
    for image, (y1, x1, y2, x2) in enumerate(boxes.tolist()):
        patch = masked[image, :, y1:y2, x1:x2]
        channel_mean = inputs[image].mean(dim=(1, 2)).view(3, 1, 1)
        assert torch.equal(patch, channel_mean.expand_as(patch))


def test_threshold_box():
    maps = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(3))
    maps[2] = 0  # constant map: normalised to 0, nothing masked
    inputs = torch.randn(3, 3, 8, 8)
    masked, lambda_eff, boxes = GradMix(
        box='threshold', threshold=0.7).mask(inputs, maps)
    masked_fraction = 0.0
    for image in range(3):
        image_map = maps[image].numpy().astype(np.float64)
        span = image_map.max() - image_map.min()
        expected = (image_map - image_map.min()) / (span + 1e-8) >= 0.7
        changed = (masked[image] != inputs[image]).any(dim=0).numpy()
        np.testing.assert_array_equal(changed, expected)
        masked_fraction += expected.mean() / 3
        rows, cols = np.nonzero(expected)
        box = ((rows.min(), cols.min(), rows.max() + 1, cols.max() + 1)
               if rows.size else (0, 0, 0, 0))
        assert tuple(boxes[image].tolist()) == box
    assert lambda_eff == pytest.approx(1 - masked_fraction, abs=1e-6)


def test_partner_fill_ce_mode_mixes_scores_by_clipped_area(build_classifier):
    model = build_classifier(num_classes=4).eval()
    inputs = torch.randn(6, 3, 16, 16)
    labels = torch.tensor([0, 1, 2, 3, 0, 1])
    scores = F.one_hot(labels, 4)
    gradmix = GradMix(fill='partner', num_classes=4)
    gradmix.attach_model(model)
    drawn = record_lambdas(gradmix)

    torch.manual_seed(5)
    mixed, mixed_scores = gradmix(inputs, scores)

    maps = LayerCAM(model, LAYERS)(inputs, 'label', labels)
    boxes, _ = expected_boxes(maps, drawn[0])
    for image, (y1, x1, y2, x2) in enumerate(boxes):
        patch = mixed[image, :, y1:y2, x1:x2]
        partners = [
            j for j in range(6)
            if torch.equal(patch, inputs[j, :, y1:y2, x1:x2])
        ]
        assert len(partners) == 1
        area = (y2 - y1) * (x2 - x1) / 256
        expected = (1 - area) * scores[image] + area * scores[partners[0]]
        torch.testing.assert_close(mixed_scores[image], expected.float())
        outside = torch.ones(16, 16, dtype=torch.bool)
        outside[y1:y2, x1:x2] = False
        assert torch.equal(mixed[image][:, outside], inputs[image][:, outside])
    torch.testing.assert_close(mixed_scores.sum(1), torch.ones(6))


def test_ce_step_gradients_and_bn_stats_are_untouched_by_attribution(
        build_classifier):
    model = build_classifier(num_classes=4)
    twin = copy.deepcopy(model)
    model.train()
    twin.train()
    gradmix = GradMix(fill='noise')
    gradmix.attach_model(model)
    inputs = torch.randn(8, 3, 16, 16)
    scores = F.one_hot(torch.arange(8) % 4, 4)
    state = {k: v.clone() for k, v in model.state_dict().items()}

    torch.manual_seed(0)
    mixed, mixed_scores = gradmix(inputs, scores)
    assert torch.equal(mixed_scores, scores.float())  # noise fill: no mixing
    assert all(p.grad is None for p in model.parameters())
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert all(m.training for m in model.modules())

    for net in (model, twin):  # the same step, with and without attribution
        logits = net(mixed, mode='tensor')
        loss = torch.sum(-mixed_scores * F.log_softmax(logits, 1), 1).mean()
        loss.backward()
    for (name, param), twin_param in zip(model.named_parameters(),
                                         twin.parameters()):
        assert torch.equal(param.grad, twin_param.grad), name
    for (key, value), twin_value in zip(model.state_dict().items(),
                                        twin.state_dict().values()):
        assert torch.equal(value, twin_value), key


def test_ce_mode_deterministic_under_seed_and_pred_objective(build_classifier):
    model = build_classifier(num_classes=4)
    gradmix = GradMix(objective='pred', attribution_layers=['backbone.layer4'])
    gradmix.attach_model(model)
    inputs, scores = torch.randn(4, 3, 16, 16), torch.eye(4)
    results = []
    for _ in range(2):
        torch.manual_seed(7)
        results.append(gradmix(inputs, scores))
    assert torch.equal(results[0][0], results[1][0])
    assert not torch.equal(results[0][0], inputs)


def test_prob_and_missing_model(build_classifier):
    gradmix = GradMix(prob=0.0)
    with pytest.raises(RuntimeError, match=r"dict\(type='GradMixModelHook'\)"):
        gradmix(torch.randn(2, 3, 8, 8), torch.eye(2))
    gradmix.attach_model(build_classifier())
    inputs = torch.randn(2, 3, 8, 8)
    out_inputs, out_scores = gradmix(inputs, torch.eye(2, dtype=torch.long))
    assert out_inputs is inputs and out_scores.dtype == torch.float32

    torch.manual_seed(0)
    draws = [GradMix(prob=0.3).sample_apply() for _ in range(2000)]
    assert 0.25 < np.mean(draws) < 0.35


def test_pickle_and_deepcopy_drop_the_model(build_classifier):
    gradmix = BATCH_AUGMENTS.build(dict(type='GradMix'))
    model = build_classifier()
    gradmix.attach_model(model)
    assert gradmix.attached_model is model
    assert pickle.loads(pickle.dumps(gradmix)).attached_model is None
    assert copy.deepcopy(gradmix).attached_model is None
    assert gradmix.attached_model is model


def test_bad_arguments(build_classifier):
    with pytest.raises(ValueError, match="'stripes'"):
        GradMix(fill='stripes')
    with pytest.raises(ValueError, match="'centre'"):
        GradMix(box='centre')
    with pytest.raises(ValueError, match='lambda_range=0.6'):
        GradMix(lambda_min=0.5, lambda_range=0.6)
    with pytest.raises(ValueError, match='threshold'):
        GradMix(threshold=0.0)
    with pytest.raises(ValueError, match="'contrastive'"):
        GradMix(objective='contrastive')
    gradmix = GradMix(attribution_layers=['backbone.layer9'])
    with pytest.raises(ValueError, match='backbone.layer9'):
        gradmix.attach_model(build_classifier())
    with pytest.raises(ValueError, match=r'maps \(2, 8, 7\)'):
        GradMix().mask(torch.randn(2, 3, 8, 8), torch.rand(2, 8, 7))
    gradmix = GradMix(num_classes=3)
    gradmix.attach_model(build_classifier())
    with pytest.raises(ValueError, match='4 classes'):
        gradmix(torch.randn(2, 3, 8, 8), torch.zeros(2, 4))


CE_MODEL = """
model = dict(
    type='ImageClassifier',
    backbone=dict(type='ResNet_CIFAR', depth=18, stem_channels=8,
                  base_channels=8),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(type='LinearClsHead', num_classes=2, in_channels=64),
    data_preprocessor=dict(num_classes=2, mean=[127.5] * 3, std=[64.0] * 3,
                           to_rgb=True),
    train_cfg=dict(augments=[dict(type='GradMix', fill='partner')]))
views = []
"""
CONTRASTIVE_MODEL = """
model = dict(
    type='ContrastiveClassifier',
    backbone=dict(type='ResNet_CIFAR', depth=18, stem_channels=8,
                  base_channels=8),
    neck=dict(type='GlobalAveragePooling'),
    projector=dict(type='ProjectionNeck', in_channels=64, hid_channels=32,
                   out_channels=16),
    gradmix=dict(type='GradMix', attribution_layers=['backbone.layer2',
                 'backbone.layer3', 'backbone.layer4']),
    data_preprocessor=dict(type='OSRDataPreprocessor', mean=[127.5] * 3,
                           std=[64.0] * 3))
views = [dict(type='MultiView', num_views=2,
              transforms=[[dict(type='RandomFlip', prob=0.5)]])]
"""


def test_visualize_tool_uses_top_level_data_preprocessor():
    # Recipes put the normalisation in a top-level ``data_preprocessor``
    # that mmengine's Runner merges into the model; so must the tool, or
    # it attributes and shows unnormalised images.
    from mmengine import Config
    cfg = Config.fromstring(CONTRASTIVE_MODEL, '.py')
    cfg.model.pop('data_preprocessor')
    cfg.data_preprocessor = dict(
        type='OSRDataPreprocessor', mean=[10.0] * 3, std=[2.0] * 3)
    model = load_tool('visualize_gradmix').build_model(cfg)
    assert model.data_preprocessor.mean.flatten().tolist() == [10.0] * 3
    assert model.data_preprocessor.std.flatten().tolist() == [2.0] * 3


@pytest.mark.parametrize('model_cfg,num_layers', [(CE_MODEL, 2),
                                                  (CONTRASTIVE_MODEL, 3)])
def test_visualize_tool_writes_png_grid(tmp_path, model_cfg, num_layers):
    import cv2
    from matplotlib import image as mpimg
    rng = np.random.default_rng(0)
    for name in ('cat', 'dog'):
        (tmp_path / 'data' / name).mkdir(parents=True)
        for index in range(3):
            cv2.imwrite(
                str(tmp_path / 'data' / name / f'{index}.png'),
                rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    config = tmp_path / 'config.py'
    config.write_text(model_cfg + f"""
custom_imports = dict(imports=['gradmix_plugin'], allow_failed_imports=False)
default_scope = 'mmpretrain'
train_dataloader = dict(
    batch_size=2, num_workers=2, persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(type='CustomDataset', data_root={str(tmp_path / 'data')!r},
                 pipeline=[dict(type='LoadImageFromFile'), *views,
                           dict(type='PackInputs')]))
""")
    checkpoint = tmp_path / 'model.pth'
    torch.manual_seed(3)
    model = MODELS.build(
        __import__('mmengine').Config.fromfile(config).model)
    torch.save({'state_dict': model.state_dict()}, checkpoint)
    out = tmp_path / 'grid.png'
    load_tool('visualize_gradmix').main([
        str(config),
        str(checkpoint), '--out',
        str(out), '--num-images', '3'
    ])
    grid = mpimg.imread(out)
    # 3 rows; input, the layer maps, sum, box, output: panels of 200 px.
    assert grid.shape[:2] == (600, 200 * (num_layers + 4))
    assert grid.std() > 0.05
