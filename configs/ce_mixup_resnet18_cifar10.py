# Baseline: cross-entropy + Mixup (alpha 1), ResNet-18, CIFAR-10 OSR.
# Select the open-set split (0-4) with: --cfg-options osr_split=<k>
_base_ = ['./ce_resnet18_cifar10.py']

model = dict(
    head=dict(loss=dict(type='CrossEntropyLoss', use_soft=True)),
    train_cfg=dict(augments=dict(type='Mixup', alpha=1.0)))
