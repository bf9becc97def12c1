# The embedded digits demo (gradmix_resnet18_digits.py: SupCon + SimCLR +
# GradMix, MNIST-protocol split 0, no download) on the small ViT of
# _base_/models/vit_cifar.py at half its width (96), patch 4 on the 32x32
# digits; LayerCAM on the patch tokens of layers 4 and 5 of 6:
#   python tools/train.py configs/gradmix_vit_digits.py
_base_ = ['./gradmix_resnet18_digits.py', '_base_/models/vit_cifar.py']

vit_cifar = _base_.vit_cifar
vit_cifar.arch.update(embed_dims=96, feedforward_channels=192)
model = dict(
    backbone=vit_cifar,
    neck=None,
    projector=dict(in_channels=96, hid_channels=96),
    gradmix=dict(attribution_layers=_base_.vit_cifar_layers))
