# GradMix (SupCon + SimCLR + GradMix) on a small ViT (patch 4, 32x32),
# CIFAR-10 OSR: gradmix_resnet18_cifar10.py with the backbone swapped; the
# contrastive reference mode attributes the patch tokens of layers 4 and 5.
# Select the open-set split (0-4) with: --cfg-options osr_split=<k>
_base_ = ['./gradmix_resnet18_cifar10.py', '_base_/models/vit_cifar.py']

model = dict(
    backbone=_base_.vit_cifar,
    neck=None,
    projector=dict(in_channels=_base_.vit_cifar_channels),
    gradmix=dict(attribution_layers=_base_.vit_cifar_layers))
