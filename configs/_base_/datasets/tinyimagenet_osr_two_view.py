# TinyImageNet open-set recognition (20 known / 180 unknown classes) at
# 64x64, two SimCLR views per training image (loaders, evaluator and bank:
# osr_two_view.py). Original layout under data/tiny-imagenet-200
# (wnids.txt, train/<wnid>/images, val/images + val_annotations.txt); the
# labelled val split is the test set.
_base_ = ['./osr_two_view.py']

dataset_type = 'TinyImageNet'
data_root = 'data/tiny-imagenet-200'
image_size = 64

data_preprocessor = dict(
    num_classes=20,
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375])

# The base view at 64x64.
view_pipeline = _base_.view_pipeline
view_pipeline[1].size = image_size
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
    dict(type='PackInputs'),
]

# TinyImageNet selects its images by `split`, not by `data_prefix`.
train_dataloader = dict(
    dataset=dict(
        protocol='tinyimagenet',
        dataset=dict(
            _delete_=True,
            type=dataset_type,
            data_root=data_root,
            split='train',
            pipeline=train_pipeline)))
val_dataloader = dict(
    dataset=dict(
        protocol='tinyimagenet',
        pipeline=_base_.test_pipeline,
        dataset=dict(
            _delete_=True,
            type=dataset_type,
            data_root=data_root,
            split='val')))
test_dataloader = val_dataloader

osr_bank_hook = _base_.osr_bank_hook
osr_bank_hook.dataloader.dataset.protocol = 'tinyimagenet'
osr_bank_hook.dataloader.dataset.dataset = dict(
    type=dataset_type,
    data_root=data_root,
    split='train',
    pipeline=_base_.test_pipeline)
custom_hooks = [osr_bank_hook]
