# GradMix (SupCon + SimCLR + GradMix), CIFAR-stem ResNet-18, TinyImageNet
# 64x64 OSR, 600 epochs, batch 256 images (two views each).
# Attribution on stages 2, 3 and 4; lambda_ssl 1.0: the reference's
# TinyImageNet values, with mmpretrain's zero_init_residual (the
# reference's initialisation: configs/reference/
# ref_tinyimagenet_supcon_simclr_gradmix_resnet18.py).
# Select the open-set split (0-4) with: --cfg-options osr_split=<k>
_base_ = [
    '_base_/models/contrastive_resnet18_cifar.py',
    '_base_/datasets/tinyimagenet_osr_two_view.py',
    '_base_/schedules/adam_cosine_600e.py',
    '_base_/default_runtime.py',
]

model = dict(
    gamma=1.0,
    lambda_ssl=1.0,
    gradmix=dict(attribution_layers=[
        'backbone.layer2', 'backbone.layer3', 'backbone.layer4'
    ]))
