# Semantic Shift Benchmark (Vaze et al., ICLR 2022) fine-grained open-set
# recognition at the benchmark's 448x448, two SimCLR views per training
# image (loaders, evaluator and bank: osr_two_view.py). The SSB has ONE
# known class list per dataset; `osr_split` selects the unknown classes
# of the test set: 'hard' (Medium + Hard, the default) or 'easy'. The
# cub / aircraft / scars configs set the dataset type, `data_root`, the
# protocol and `num_classes`.
_base_ = ['./osr_two_view.py']

osr_split = 'hard'
image_size = 448

# ImageNet RGB statistics (LoadImageFromFile gives BGR: to_rgb=True).
data_preprocessor = dict(
    mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375])

# The base view at 448x448.
view_pipeline = _base_.view_pipeline
view_pipeline[1].size = image_size
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
    dict(type='PackInputs'),
]
# Resize to 448 / 0.875 = 512, then the central 448x448 (Vaze et al.).
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 512)),
    dict(type='CenterCrop', crop_size=image_size),
    dict(type='PackInputs'),
]

# The SSB datasets select their images by `split`, not by `data_prefix`:
# the dataset configs fill `type`, `data_root` and `split`.
train_dataloader = dict(
    batch_size=32,
    dataset=dict(
        split=osr_split,
        dataset=dict(_delete_=True, pipeline=train_pipeline)))
val_dataloader = dict(
    batch_size=64,
    dataset=dict(
        split=osr_split,
        pipeline=test_pipeline,
        dataset=dict(_delete_=True)))
test_dataloader = val_dataloader

osr_bank_hook = _base_.osr_bank_hook
osr_bank_hook.dataloader.batch_size = 64
osr_bank_hook.dataloader.dataset.split = osr_split
osr_bank_hook.dataloader.dataset.dataset = dict(pipeline=test_pipeline)
custom_hooks = [osr_bank_hook]
