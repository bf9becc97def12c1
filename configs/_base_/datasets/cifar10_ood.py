# CIFAR-10 as the in-distribution (ID) set of an OOD-detection benchmark,
# all 10 classes known (OpenOOD v1.5's CIFAR-10 benchmark): training and
# validation as cifar10.py (closed-set top-1); the test set is the CIFAR-10
# test images followed by the OOD sets of cifar_ood_sources.py
# (OODDataset), evaluated by OSRMetric per OOD source, per group and for all
# sources together. The kNN / Mahalanobis bank is the training set with the
# test pipeline.
_base_ = ['./cifar10.py', './cifar_ood_sources.py']

test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='OODDataset',
        id_dataset=dict(
            type=_base_.dataset_type,
            data_root=_base_.data_root,
            data_prefix='test'),
        # The ID set's pipeline, where mmpretrain's inferencer reads it.
        pipeline=_base_.test_pipeline,
        ood_datasets=[_base_.tin_ood, _base_.mnist_ood],
        # OpenOOD's groups; add 'cifar100' to near and 'svhn', 'texture',
        # 'places365' to far with those sources.
        ood_groups=dict(near=['tin'], far=['mnist'])))
test_evaluator = dict(_base_.ood_evaluator, _delete_=True)

osr_bank_hook = dict(
    type='OSRBankHook',
    dataloader=dict(
        batch_size=256,
        num_workers=2,
        persistent_workers=True,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(
            type=_base_.dataset_type,
            data_root=_base_.data_root,
            data_prefix='train',
            pipeline=_base_.test_pipeline)))
custom_hooks = [osr_bank_hook]
