# Cross-entropy + GradMix (partner fill) on a small ViT (patch 4, 32x32),
# CIFAR-10 OSR: ce_gradmix_resnet18_cifar10.py with the backbone swapped.
# LayerCAM attributes the patch tokens of layers 4 and 5 of 6 (the class
# token dropped, the 8x8 grid from the backbone).
# Select the open-set split (0-4) with: --cfg-options osr_split=<k>
_base_ = ['./ce_gradmix_resnet18_cifar10.py', '_base_/models/vit_cifar.py']

model = dict(
    backbone=_base_.vit_cifar,
    neck=None,
    head=dict(in_channels=_base_.vit_cifar_channels),
    train_cfg=dict(
        augments=dict(attribution_layers=_base_.vit_cifar_layers)))
