# Cross-entropy ResNet-18 (CIFAR stem) with the OSR head, built on
# mmpretrain's own model config.
_base_ = ['mmpretrain::_base_/models/resnet18_cifar.py']

model = dict(
    head=dict(type='OSRLinearClsHead', num_classes=6, in_channels=512))
