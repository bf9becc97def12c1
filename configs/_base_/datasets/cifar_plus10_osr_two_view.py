# CIFAR+10 open-set recognition: 4 non-animal CIFAR-10 classes known, 10
# animal classes of CIFAR-100 unknown; two SimCLR views per training image.
# Layouts: data/cifar10/{train,test}/<class name>/<image> and
# data/cifar100/test/<fine class name>/<image> (sorted names give the
# standard fine-label ids 0..99).
osr_split = 0
dataset_type = 'CustomDataset'
data_root = 'data/cifar10'
unknown_data_root = 'data/cifar100'
image_size = 32

data_preprocessor = dict(
    type='OSRDataPreprocessor',
    num_classes=4,
    mean=[125.307, 122.961, 113.8575],
    std=[51.5865, 50.847, 51.255],
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
        protocol='cifar_plus10',
        split=osr_split,
        subset='known',
        dataset=dict(
            type=dataset_type,
            data_root=data_root,
            data_prefix='train',
            pipeline=train_pipeline)))

val_dataloader = dict(
    batch_size=256,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='OSRDataset',
        protocol='cifar_plus10',
        split=osr_split,
        subset='open',
        dataset=dict(
            type=dataset_type,
            data_root=data_root,
            data_prefix='test',
            pipeline=test_pipeline),
        unknown_dataset=dict(
            type=dataset_type,
            data_root=unknown_data_root,
            data_prefix='test',
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
            protocol='cifar_plus10',
            split=osr_split,
            subset='known',
            dataset=dict(
                type=dataset_type,
                data_root=data_root,
                data_prefix='train',
                pipeline=test_pipeline))))
custom_hooks = [osr_bank_hook]
