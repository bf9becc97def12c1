# The reference's two-stage recipe at demo scale, stage 1 of 2: the
# CIFAR-10 stage 1 (ref_cifar10_stage1_simclr_gradmix_resnet18.py:
# self-supervised SimCLR + GradMix, gamma 0, lambda 1.0, the reference's
# initialisation and layers 2-4) on the embedded scikit-learn digits
# (digits_osr_two_view.py), with the quarter-width ResNet-18 of the digits
# demo and 10 epochs instead of 600. Stage 2:
# ref_digits_stage2_supcon_simclr_gradmix_resnet18.py. For tests and the
# CPU experiment of docs/benchmarks.md; not a result of the reference.
_base_ = [
    '../_base_/models/ref_contrastive_resnet18_cifar.py',
    '../_base_/datasets/digits_osr_two_view.py',
    '../_base_/schedules/adam_cosine_demo.py',
    '../_base_/default_runtime.py',
]

model = dict(
    # A quarter of the ResNet-18 width: 128-d pooled features (as
    # configs/gradmix_resnet18_digits.py).
    backbone=dict(stem_channels=16, base_channels=16),
    projector=dict(in_channels=128, hid_channels=128, out_channels=64),
    gamma=0.0,
    lambda_ssl=1.0)

default_hooks = dict(
    logger=dict(interval=5),
    checkpoint=dict(interval=10, max_keep_ckpts=1))
