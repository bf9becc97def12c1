# The embedded demo data: scikit-learn's 1797 handwritten digits as 32x32
# RGB images (DigitsDataset, no download, images in memory, so the
# pipelines have no LoadImageFromFile), open-set split of the MNIST
# protocol (6 known / 4 unknown digits), two SimCLR views per image
# (evaluator and bank: osr_two_view.py).
_base_ = ['./osr_two_view.py']

dataset_type = 'DigitsDataset'

data_preprocessor = dict(
    num_classes=6, mean=[77.9, 77.9, 77.9], std=[82.6, 82.6, 82.6],
    to_rgb=False)

# The base view on the in-memory RGB arrays (no BGR conversion).
view_pipeline = _base_.view_pipeline
view_pipeline[0].to_rgb = False
# Milder crops than the usual (0.2, 1.0): the digits are 8x8 images
# upsampled, a small crop no longer shows the digit.
view_pipeline[1].scale = (0.5, 1.0)
view_pipeline[-1].to_bgr = False
train_pipeline = [
    dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='PackInputs'),
]

# Small batches, no worker processes; DigitsDataset selects its images by
# `split`.
train_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        protocol='digits',
        dataset=dict(
            _delete_=True,
            type=dataset_type,
            split='train',
            pipeline=train_pipeline)))
val_dataloader = dict(
    batch_size=128,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        protocol='digits',
        pipeline=test_pipeline,
        dataset=dict(_delete_=True, type=dataset_type, split='test')))
test_dataloader = val_dataloader

osr_bank_hook = _base_.osr_bank_hook
osr_bank_hook.dataloader.update(
    batch_size=128, num_workers=0, persistent_workers=False)
osr_bank_hook.dataloader.dataset.protocol = 'digits'
osr_bank_hook.dataloader.dataset.dataset = dict(
    type=dataset_type, split='train', pipeline=test_pipeline)
custom_hooks = [osr_bank_hook]
