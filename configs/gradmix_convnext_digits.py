# The embedded digits demo (gradmix_resnet18_digits.py: SupCon + SimCLR +
# GradMix, MNIST-protocol split 0, no download) on the CIFAR-size ConvNeXt
# of _base_/models/convnext_cifar.py at a quarter of its width (16 to 128
# channels, as the ResNet-18 of the demo); LayerCAM on stages 3 and 4:
#   python tools/train.py configs/gradmix_convnext_digits.py
_base_ = ['./gradmix_resnet18_digits.py', '_base_/models/convnext_cifar.py']

convnext_cifar = _base_.convnext_cifar
convnext_cifar.arch.channels = [16, 32, 64, 128]
model = dict(
    backbone=convnext_cifar,
    neck=None,
    projector=dict(in_channels=128, hid_channels=128),
    gradmix=dict(attribution_layers=_base_.convnext_cifar_layers))
