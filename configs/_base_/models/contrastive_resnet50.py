# Two-view contrastive ResNet-50 with the ImageNet stem (7x7 conv, max
# pooling; for 224-448 px images): SupCon + SimCLR with GradMix in its
# reference mode, as contrastive_resnet18_cifar.py, with a 2048-2048-128
# projection MLP. Random initialisation; set `model.backbone.init_cfg` to
# start from pretrained weights.
_base_ = ['./contrastive_resnet18_cifar.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet',
        depth=50,
        num_stages=4,
        out_indices=(3, ),
        style='pytorch'),
    projector=dict(in_channels=2048, hid_channels=2048))
