# A ConvNeXt for 32x32 images: stem patch size 1 (instead of 4), so the four
# stages run at 32, 16, 8 and 4 pixels like the CIFAR-stem ResNet-18, with
# its widths (64 to 512) and ConvNeXt-T's depths (2, 2, 6, 2), 11M
# parameters. Stages output (B, C, h, w) maps; the backbone pools before its
# final norm, so no neck. A recipe replaces its backbone with
# `backbone=_base_.convnext_cifar`.
convnext_cifar = dict(
    _delete_=True,
    type='ConvNeXt',
    arch=dict(depths=[2, 2, 6, 2], channels=[64, 128, 256, 512]),
    stem_patch_size=1,
    drop_path_rate=0.1,
    gap_before_final_norm=True)
convnext_cifar_channels = 512
# Stages 3 and 4 (8x8 and 4x4 maps), as layer3 and layer4 of the ResNet.
convnext_cifar_layers = ['backbone.stages.2', 'backbone.stages.3']
