# CIFAR-10, all 10 classes, two SimCLR views per image and no labels
# needed: self-supervised pre-training (evaluated by a linear probe, see
# cifar10.py). Layout: data/cifar10/{train,test}/<class name>/<image>.
dataset_type = 'CustomDataset'
data_root = 'data/cifar10'
image_size = 32

data_preprocessor = dict(
    type='OSRDataPreprocessor',
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

train_dataloader = dict(
    batch_size=256,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix='train',
        pipeline=train_pipeline))

# No evaluation during pre-training: the linear probe measures it.
val_dataloader = None
val_evaluator = None
test_dataloader = None
test_evaluator = None
