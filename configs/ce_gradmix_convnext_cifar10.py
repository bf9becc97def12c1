# Cross-entropy + GradMix (partner fill) on a CIFAR-size ConvNeXt, CIFAR-10
# OSR: ce_gradmix_resnet18_cifar10.py with the backbone swapped; LayerCAM on
# stages 3 and 4.
# Select the open-set split (0-4) with: --cfg-options osr_split=<k>
_base_ = [
    './ce_gradmix_resnet18_cifar10.py', '_base_/models/convnext_cifar.py'
]

model = dict(
    backbone=_base_.convnext_cifar,
    neck=None,
    head=dict(in_channels=_base_.convnext_cifar_channels),
    train_cfg=dict(
        augments=dict(attribution_layers=_base_.convnext_cifar_layers)))
