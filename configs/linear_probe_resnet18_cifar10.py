# Linear probe of a self-supervised backbone: a linear classifier on the
# frozen 512-d pooled ResNet-18 features, CIFAR-10 (10 classes), 30 epochs,
# reports top-1 accuracy: the plugin's own probe (the reference's, a
# bias-free layer on the 128-d normalised projection:
# reference/ref_linear_probe_projection_cifar10.py). Give the checkpoint with
#   --cfg-options model.backbone.init_cfg.checkpoint=<path/to/epoch_600.pth>
# (keys `backbone.*` of a ContrastiveClassifier checkpoint are loaded).
_base_ = [
    'mmpretrain::_base_/models/resnet18_cifar.py',
    '_base_/datasets/cifar10.py',
    '_base_/schedules/adam_cosine_30e.py',
    '_base_/default_runtime.py',
]

pretrained = 'work_dirs/simclr_gradmix_resnet18_cifar10/epoch_600.pth'

model = dict(
    backbone=dict(
        # All stages frozen, BatchNorm statistics too.
        frozen_stages=4,
        norm_eval=True,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    head=dict(type='LinearClsHead', num_classes=10, in_channels=512))
