# Open-set recognition on a dataset of image folders, two SimCLR views per
# training image: the dataloaders, evaluator and kNN bank shared by the
# *_osr_two_view.py configs. A dataset config inherits this file and sets
# the `protocol` and `data_root` of the three loaders (train, val / test,
# bank), `num_classes` (the known classes), `mean` and `std`.
# Base variables are substituted when this file is parsed: a dataset config
# that changes `data_root`, `image_size` or a pipeline also overrides the
# nested keys that use it.
# The known classes of split `osr_split` are relabelled 0..K-1; validation
# and test use the `open` test set (unknown classes get gt_label -1). The
# tools copy the top-level `osr_split` into every OSRDataset.
_base_ = ['./two_view.py']

osr_split = 0
dataset_type = _base_.dataset_type

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
        split=osr_split,
        subset='known',
        dataset=dict(
            type=dataset_type,
            data_prefix='train',
            pipeline=_base_.train_pipeline)))

val_dataloader = dict(
    batch_size=256,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='OSRDataset',
        split=osr_split,
        subset='open',
        # Here, not in the wrapped dataset: mmpretrain's inferencer reads
        # test_dataloader.dataset.pipeline.
        pipeline=test_pipeline,
        dataset=dict(type=dataset_type, data_prefix='test')))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='OSRMetric', scores=('class_knn', 'knn'), feature='embeds')
test_evaluator = val_evaluator

# The kNN bank of OSRMetric: the known training images with the test
# pipeline. `custom_hooks` is a list, replaced whole by a child config: a
# dataset config edits `_base_.osr_bank_hook` and lists it again.
osr_bank_hook = dict(
    type='OSRBankHook',
    dataloader=dict(
        batch_size=256,
        num_workers=2,
        persistent_workers=True,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(
            type='OSRDataset',
            split=osr_split,
            subset='known',
            dataset=dict(
                type=dataset_type,
                data_prefix='train',
                pipeline=test_pipeline))))
custom_hooks = [osr_bank_hook]
