# The embedded demo data: scikit-learn's 1797 handwritten digits as 32x32
# RGB images (DigitsDataset, no download, images in memory, so the
# pipelines have no LoadImageFromFile), open-set split of the MNIST
# protocol (6 known / 4 unknown digits), two SimCLR views per image.
osr_split = 0
dataset_type = 'DigitsDataset'
image_size = 32

data_preprocessor = dict(
    type='OSRDataPreprocessor',
    num_classes=6,
    mean=[77.9, 77.9, 77.9],
    std=[82.6, 82.6, 82.6],
    to_rgb=False)

# The SimCLR / SupContrast view: torchvision's transforms on a PIL image
# (mmpretrain's ColorJitter cannot shift the hue with numpy 2: mmcv's
# adjust_hue casts a negative shift to uint8).
view_pipeline = [
    dict(type='NumpyToPIL', to_rgb=False),
    # Milder crops than the usual (0.2, 1.0): the digits are 8x8 images
    # upsampled, a small crop no longer shows the digit.
    dict(
        type='torchvision/RandomResizedCrop',
        size=image_size,
        scale=(0.5, 1.0)),
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
    dict(type='PILToNumpy', to_bgr=False),
]
train_pipeline = [
    dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='PackInputs'),
]

train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type='OSRDataset',
        protocol='digits',
        split=osr_split,
        subset='known',
        dataset=dict(
            type=dataset_type,
            split='train',
            pipeline=train_pipeline)))

val_dataloader = dict(
    batch_size=128,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='OSRDataset',
        protocol='digits',
        split=osr_split,
        subset='open',
        dataset=dict(
            type=dataset_type,
            split='test',
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
        batch_size=128,
        num_workers=0,
        persistent_workers=False,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(
            type='OSRDataset',
            protocol='digits',
            split=osr_split,
            subset='known',
            dataset=dict(
                type=dataset_type,
                split='train',
                pipeline=test_pipeline))))
custom_hooks = [osr_bank_hook]
