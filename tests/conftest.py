"""Fixtures shared by the test suite."""
import os

import numpy as np
import pytest
import torch
from PIL import Image


def _build_classifier(num_classes: int = 4,
                      seed: int = 0,
                      head_type: str = 'LinearClsHead',
                      random_bn: bool = False):
    """A tiny CIFAR-stem ResNet-18 (8 base channels, 64-d pooled features)
    ``ImageClassifier``, its weights drawn under ``seed``.

    With ``random_bn`` the BatchNorm statistics and affine parameters are
    drawn too (non-trivial, so that eval and train mode differ and a moved
    running stat would be visible).
    """
    # Imported here, not at collection: the other tests keep their imports.
    from mmpretrain.registry import MODELS

    import gradmix_plugin  # noqa: F401  (registers the plugin)

    torch.manual_seed(seed)
    model = MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=dict(
                type='ResNet_CIFAR',
                depth=18,
                stem_channels=8,
                base_channels=8),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(
                type=head_type, num_classes=num_classes, in_channels=64)))
    if random_bn:
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 1.5)
                module.weight.data.uniform_(0.5, 1.5)
                module.bias.data.uniform_(-0.2, 0.2)
    return model


@pytest.fixture
def build_classifier():
    """The builder of a tiny ResNet-18 classifier (see
    ``_build_classifier``)."""
    return _build_classifier


@pytest.fixture(scope='session')
def png_root(tmp_path_factory) -> str:
    """A CustomDataset folder: 2 classes x 8 random 16x16 PNG images."""
    root = tmp_path_factory.mktemp('png_tree')
    rng = np.random.default_rng(0)
    for cls in ('a', 'b'):
        os.makedirs(root / cls)
        for i in range(8):
            img = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
            Image.fromarray(img).save(root / cls / f'{i}.png')
    return str(root)
