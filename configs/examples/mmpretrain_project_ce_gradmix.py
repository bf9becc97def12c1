# GradMix in an existing mmpretrain project: mmpretrain's own CIFAR-10
# model, dataset, schedule and runtime bases, plus what the plugin adds
# (the README's "Use it from an existing mmpretrain project").
# Data: image folders data_root/{train,test}/<class name>/<image>, e.g.
#   mim train mmpretrain configs/examples/mmpretrain_project_ce_gradmix.py \
#       --cfg-options data_root=/data/cifar10 osr_split=2
# (OSRRunner copies data_root and osr_split into every dataset below).
_base_ = [
    'mmpretrain::_base_/models/resnet18_cifar.py',
    'mmpretrain::_base_/datasets/cifar10_bs16.py',
    'mmpretrain::_base_/schedules/cifar10_bs128.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['gradmix_plugin'], allow_failed_imports=False)
# The plugin's runner under any tool (mmpretrain's runtime base has none):
# osr_split / data_root overrides, provenance checks, osr_metrics.json.
runner_type = 'OSRRunner'

data_root = 'data/cifar10'
osr_split = 0
num_known = 6  # the CIFAR-10 protocol: 6 known, 4 unknown classes

# Top level, like the base's: the base's mean / std stay in effect. Files
# load as BGR (the base's binary CIFAR10 dataset gives RGB), hence to_rgb.
# OSRDataPreprocessor keeps unknown test labels (-1) as integers.
data_preprocessor = dict(
    type='OSRDataPreprocessor', num_classes=num_known, to_rgb=True)

model = dict(
    head=dict(
        type='OSRLinearClsHead',  # also gives the logits and features
        num_classes=num_known,
        loss=dict(type='CrossEntropyLoss', use_soft=True)),
    train_cfg=dict(
        augments=dict(
            type='GradMix',
            attribution_layers=['backbone.layer3', 'backbone.layer4'],
            fill='partner')))

# The base reads mmpretrain's binary CIFAR10 files; `_delete_` replaces
# its dataset by an OSR view of image folders.
train_pipeline = [dict(type='LoadImageFromFile'), *_base_.train_pipeline]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]


def osr_folders(subset, prefix, pipeline):
    return dict(
        type='OSRDataset',
        protocol='cifar10',
        split=osr_split,
        subset=subset,
        pipeline=pipeline,  # here mmpretrain's inferencer finds it
        dataset=dict(
            type='CustomDataset', data_root=data_root, data_prefix=prefix))


train_dataloader = dict(
    dataset=dict(_delete_=True, **osr_folders('known', 'train',
                                              train_pipeline)))
# Known and unknown test classes; unknown samples get gt_label -1.
val_dataloader = dict(
    dataset=dict(_delete_=True, **osr_folders('open', 'test',
                                              test_pipeline)))
test_dataloader = val_dataloader
val_evaluator = dict(
    _delete_=True,
    type='OSRMetric',
    scores=('msp', 'mls', 'class_knn', 'knn'),
    feature='feats')
test_evaluator = val_evaluator

custom_hooks = [
    # Hands the model being trained to GradMix.
    dict(type='GradMixModelHook'),
    # The kNN bank: known training images with the test pipeline.
    dict(
        type='OSRBankHook',
        dataloader=dict(
            batch_size=64,
            num_workers=2,
            sampler=dict(type='DefaultSampler', shuffle=False),
            dataset=osr_folders('known', 'train', test_pipeline))),
]
