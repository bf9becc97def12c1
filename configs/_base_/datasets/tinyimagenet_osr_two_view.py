# TinyImageNet open-set recognition (20 known / 180 unknown classes) at
# 64x64, two SimCLR views per training image. Original layout under
# data/tiny-imagenet-200 (wnids.txt, train/<wnid>/images, val/images +
# val_annotations.txt); the labelled val split is the test set.
osr_split = 0
dataset_type = 'TinyImageNet'
data_root = 'data/tiny-imagenet-200'
image_size = 64

data_preprocessor = dict(
    type='OSRDataPreprocessor',
    num_classes=20,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)

# The SimCLR / SupContrast view: torchvision's transforms on a PIL image
# (mmpretrain's ColorJitter cannot shift the hue with numpy 2: mmcv's
# adjust_hue casts a negative shift to uint8).
view_pipeline = [
    dict(type='NumpyToPIL', to_rgb=True),
    dict(
        type='torchvision/RandomResizedCrop',
        size=image_size,
        scale=(0.2, 1.0)),
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
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=256,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='OSRDataset',
        protocol='tinyimagenet',
        split=osr_split,
        subset='known',
        dataset=dict(
            type=dataset_type,
            data_root=data_root,
            split='train',
            pipeline=train_pipeline)))

val_dataloader = dict(
    batch_size=256,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='OSRDataset',
        protocol='tinyimagenet',
        split=osr_split,
        subset='open',
        dataset=dict(
            type=dataset_type,
            data_root=data_root,
            split='val',
            pipeline=test_pipeline)))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='OSRMetric', scores=('class_knn', 'knn'), feature='embeds')
test_evaluator = val_evaluator

# The kNN bank of OSRMetric: the known training images with the test
# pipeline.
osr_bank_hook = dict(
    type='OSRBankHook',
    dataloader=dict(
        batch_size=256,
        num_workers=2,
        persistent_workers=True,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(
            type='OSRDataset',
            protocol='tinyimagenet',
            split=osr_split,
            subset='known',
            dataset=dict(
                type=dataset_type,
                data_root=data_root,
                split='train',
                pipeline=test_pipeline))))
custom_hooks = [osr_bank_hook]
