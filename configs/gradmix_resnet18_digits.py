# The embedded demo: GradMix (SupCon + SimCLR + GradMix) on scikit-learn's
# handwritten digits (no download), open-set split 0 of the MNIST protocol,
# a narrow CIFAR-stem ResNet-18; trains and prints the OSR metrics in about
# two minutes on two CPU cores:
#   python tools/train.py configs/gradmix_resnet18_digits.py
_base_ = [
    '_base_/models/contrastive_resnet18_cifar.py',
    '_base_/datasets/digits_osr_two_view.py',
    '_base_/schedules/adam_cosine_demo.py',
    '_base_/default_runtime.py',
]

model = dict(
    # A quarter of the ResNet-18 width: 128-d pooled features.
    backbone=dict(stem_channels=16, base_channels=16),
    projector=dict(in_channels=128, hid_channels=128, out_channels=64),
    gamma=1.0,
    lambda_ssl=1.2,
    gradmix=dict(attribution_layers=['backbone.layer3', 'backbone.layer4']))

default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(interval=10, max_keep_ckpts=1))
