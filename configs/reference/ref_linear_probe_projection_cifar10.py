# THE REFERENCE'S LINEAR PROBE (gawainxu/GradMix main_linear.py, temp3.sh /
# linear.sh): a linear classifier WITHOUT bias on the 128-d L2-normalised
# output of the frozen projection head (not on the 512-d pooled features
# of linear_probe_resnet18_cifar10.py), trained on SimCLR-augmented views
# (one per image), Adam lr 0.01 decayed x0.1 at epochs 5, 10 and 20, 30
# epochs, CIFAR-10 (10 classes), top-1 accuracy.
# The reference reports the BEST test accuracy over the 30 epochs; this
# config reports the accuracy after the last epoch, since picking the
# epoch on the test set selects on the numbers it reports
# (docs/recipes.md, "Linear probe").
# Give the self-supervised checkpoint (a ContrastiveClassifier's: keys
# backbone.* and projector.*) to both pretrained parts:
#   --cfg-options model.backbone.init_cfg.checkpoint=<ckpt> \
#       model.neck.necks.1.init_cfg.checkpoint=<ckpt>
# (`pretrained` below is substituted when the file is read: changing it on
# the command line would not reach them, and is refused.)
_base_ = [
    '../_base_/datasets/cifar10.py',
    '../_base_/default_runtime.py',
]

pretrained = 'work_dirs/simclr_gradmix_resnet18_cifar10/epoch_600.pth'

model = dict(
    type='ImageClassifier',
    backbone=dict(
        type='ResNet_CIFAR',
        depth=18,
        num_stages=4,
        out_indices=(3, ),
        style='pytorch',
        zero_init_residual=False,
        # All stages frozen, BatchNorm statistics too.
        frozen_stages=4,
        norm_eval=True,
        init_cfg=dict(
            type='Pretrained', checkpoint=pretrained, prefix='backbone.')),
    neck=dict(
        type='SequentialNeck',
        frozen=True,
        necks=[
            dict(type='GlobalAveragePooling'),
            dict(
                type='ProjectionNeck',
                in_channels=512,
                hid_channels=512,
                out_channels=128,
                init_cfg=dict(
                    type='Pretrained',
                    checkpoint=pretrained,
                    prefix='projector.')),
        ]),
    head=dict(
        type='BiasFreeLinearClsHead',
        num_classes=10,
        in_channels=128,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))

# One SimCLR view per training image (the view of two_view.py).
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='NumpyToPIL', to_rgb=True),
    dict(type='torchvision/RandomResizedCrop', size=32, scale=(0.2, 1.0)),
    dict(type='torchvision/RandomHorizontalFlip', p=0.5),
    dict(
        type='RandomApply',
        transforms=[
            dict(
                type='torchvision/ColorJitter',
                brightness=0.4,
                contrast=0.4,
                saturation=0.4,
                hue=0.1)
        ],
        prob=0.8),
    dict(type='torchvision/RandomGrayscale', p=0.2),
    dict(type='PILToNumpy', to_bgr=True),
    dict(type='PackInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='Adam', lr=0.01,
                                        weight_decay=0.0))
param_scheduler = dict(
    type='MultiStepLR', by_epoch=True, milestones=[5, 10, 20], gamma=0.1)
train_cfg = dict(by_epoch=True, max_epochs=30, val_interval=10)
val_cfg = dict()
test_cfg = dict()
