# MNIST open-set recognition (6 known / 4 unknown digits), resized to
# 32x32 RGB, two SimCLR views per training image (loaders, evaluator and
# bank: osr_two_view.py).
# Layout: data/mnist/{train,test}/<digit>/<image>. (mmpretrain's binary
# `MNIST` dataset works too: dict(type='MNIST', data_root='data/mnist',
# split='train'); its images are 28x28 grayscale arrays, so replace
# LoadImageFromFile by a grayscale-to-RGB step.)
_base_ = ['./osr_two_view.py']

data_root = 'data/mnist'

data_preprocessor = dict(
    num_classes=6,
    mean=[33.318, 33.318, 33.318],
    std=[78.567, 78.567, 78.567])

image_size = 32
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(image_size, image_size)),
    dict(type='MultiView', num_views=2, transforms=[_base_.view_pipeline]),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(image_size, image_size)),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    dataset=dict(
        protocol='mnist',
        dataset=dict(data_root=data_root, pipeline=train_pipeline)))
val_dataloader = dict(
    dataset=dict(
        protocol='mnist',
        pipeline=test_pipeline,
        dataset=dict(data_root=data_root)))
test_dataloader = val_dataloader

osr_bank_hook = _base_.osr_bank_hook
osr_bank_hook.dataloader.dataset.protocol = 'mnist'
osr_bank_hook.dataloader.dataset.dataset.update(
    data_root=data_root, pipeline=test_pipeline)
custom_hooks = [osr_bank_hook]
