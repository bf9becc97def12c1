"""Tiny models of every backbone family GradMix supports, 32x32 inputs."""
from typing import Sequence

import torch
from mmpretrain.registry import MODELS

import gradmix_plugin  # noqa: F401  (registers the plugin)

NUM_CLASSES = 3
GAP = dict(type='GlobalAveragePooling')
TINY_VIT = dict(
    arch=dict(
        embed_dims=32, num_layers=3, num_heads=2, feedforward_channels=64),
    img_size=32,
    patch_size=4)

# family: (backbone, neck, feature channels, attribution layers). The ViT
# attributes the layers before the last one: with the class-token output
# the patch tokens of the last layer do not reach the logits.
BACKBONES = dict(
    vit=(dict(type='VisionTransformer', **TINY_VIT), None, 32,
         ('backbone.layers.0', 'backbone.layers.1')),
    deit=(dict(
        type='DistilledVisionTransformer', out_type='avg_featmap',
        **TINY_VIT), None, 32, ('backbone.layers.1', 'backbone.layers.2')),
    swin=(dict(
        type='SwinTransformer',
        arch=dict(embed_dims=16, depths=[1, 1, 2, 1], num_heads=[1, 1, 2, 2]),
        img_size=32,
        patch_size=2,
        window_size=2), GAP, 128,
          ('backbone.stages.2.blocks.1', 'backbone.stages.3.blocks.0')),
    convnext=(dict(
        type='ConvNeXt',
        arch=dict(depths=[1, 1, 1, 1], channels=[8, 16, 32, 64]),
        stem_patch_size=1), None, 64,
              ('backbone.stages.2', 'backbone.stages.3')),
    resnet50=(dict(
        type='ResNet', depth=50, stem_channels=8, base_channels=2), GAP, 64,
              ('backbone.layer3', 'backbone.layer4')),
    timm_vit=(dict(
        type='TIMMBackbone',
        model_name='vit_tiny_patch16_224',
        features_only=True,
        out_indices=(2, ),
        img_size=32,
        patch_size=4,
        depth=3,
        embed_dim=32,
        num_heads=2), GAP, 32, ('backbone.timm_model.model.blocks.0',
                                'backbone.timm_model.model.blocks.1')),
    timm_convnext=(dict(
        type='TIMMBackbone',
        model_name='convnext_atto',
        depths=(1, 1, 1, 1),
        dims=(8, 16, 32, 64)), GAP, 64, ('backbone.timm_model.stages.2',
                                         'backbone.timm_model.stages.3')),
)
FAMILIES = tuple(BACKBONES)


def ce_model(family: str, layers: Sequence = None, seed: int = 0):
    """ImageClassifier with GradMix (partner fill) as its batch augment."""
    backbone, neck, channels, default_layers = BACKBONES[family]
    torch.manual_seed(seed)
    return MODELS.build(
        dict(
            type='ImageClassifier',
            backbone=backbone,
            neck=neck,
            head=dict(
                type='LinearClsHead',
                num_classes=NUM_CLASSES,
                in_channels=channels,
                loss=dict(type='CrossEntropyLoss', use_soft=True)),
            data_preprocessor=dict(
                type='ClsDataPreprocessor',
                num_classes=NUM_CLASSES,
                mean=[127.5] * 3,
                std=[64.0] * 3,
                batch_augments=dict(augments=[
                    dict(
                        type='GradMix',
                        attribution_layers=layers or default_layers,
                        fill='partner')
                ]))))


def contrastive_model(family: str, layers: Sequence = None, seed: int = 0):
    """Two-view ContrastiveClassifier running the reference GradMix."""
    backbone, neck, channels, default_layers = BACKBONES[family]
    torch.manual_seed(seed)
    model = MODELS.build(
        dict(
            type='ContrastiveClassifier',
            backbone=backbone,
            neck=neck,
            projector=dict(
                type='ProjectionNeck',
                in_channels=channels,
                hid_channels=32,
                out_channels=16),
            gradmix=dict(
                type='GradMix',
                attribution_layers=layers or default_layers)))
    model.init_weights()
    return model
