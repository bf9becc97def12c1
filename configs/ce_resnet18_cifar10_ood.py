# Cross-entropy ResNet-18 (CIFAR stem) on all 10 CIFAR-10 classes, tested as
# an OOD detector against Tiny-ImageNet (resized to 32x32) and MNIST (3
# channels, 32x32), OpenOOD v1.5's CIFAR-10 layout:
#   python tools/test.py configs/ce_resnet18_cifar10_ood.py CKPT --show-dir DIR
_base_ = [
    '_base_/models/ce_resnet18_cifar.py',
    '_base_/datasets/cifar10_ood.py',
    '_base_/schedules/adam_cosine_600e.py',
    '_base_/default_runtime.py',
]

model = dict(head=dict(num_classes=10))
train_dataloader = dict(batch_size=128)
