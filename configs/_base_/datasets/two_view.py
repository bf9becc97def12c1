# Two SimCLR / SupContrast views per training image, the part shared by
# the self-supervised (cifar10_two_view.py) and the open-set
# (osr_two_view.py) dataset configs. Defaults: 32x32 images read from
# files; a dataset config sets `data_root`, the dataloaders and the mean /
# std of `data_preprocessor`.
dataset_type = 'CustomDataset'
image_size = 32

data_preprocessor = dict(type='OSRDataPreprocessor', to_rgb=True)

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
