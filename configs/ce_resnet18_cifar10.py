# Baseline: cross-entropy ResNet-18 (mmpretrain's ImageClassifier with the
# OSR linear head), CIFAR-10 OSR, same schedule as the GradMix recipes.
# Select the open-set split (0-4) with: --cfg-options osr_split=<k>
_base_ = [
    '_base_/models/ce_resnet18_cifar.py',
    '_base_/datasets/cifar10_osr.py',
    '_base_/schedules/adam_cosine_600e.py',
    '_base_/default_runtime.py',
]
