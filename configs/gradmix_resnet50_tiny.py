# GradMix (SupCon + SimCLR + GradMix) on mmpretrain's ResNet-50 (ImageNet
# stem: 7x7 stride-2 convolution and max pooling, bottleneck blocks),
# TinyImageNet 64x64 OSR: gradmix_resnet18_tiny.py with the backbone swapped.
# At 64x64 the stages 2, 3 and 4 attributed give 8x8, 4x4 and 2x2 maps.
# Select the open-set split (0-4) with: --cfg-options osr_split=<k>
_base_ = ['./gradmix_resnet18_tiny.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=50,
        out_indices=(3, ),
        style='pytorch'),
    # 2048-d pooled features, 2048-2048-128 projector.
    projector=dict(in_channels=2048, hid_channels=2048))
