# ce_resnet18_cifar10.py (CIFAR-10 OSR split `osr_split`, 6 known classes),
# tested as an OOD benchmark: the ID set is the known classes of the split's
# test set; the OOD sources are the split's 4 unknown classes (`unknown`),
# Tiny-ImageNet (`tin`, resized to 32x32) and MNIST (`mnist`, 3 channels,
# 32x32), reported per source and per group (the mean over the group's
# sources, as OpenOOD's near / far): `near` = the split's unknown CIFAR-10
# classes and Tiny-ImageNet, `far` = MNIST. Training and validation are
# those of ce_resnet18_cifar10.py, so its checkpoints test here unchanged:
#   python tools/test.py configs/ce_resnet18_cifar10_osr_ood.py CKPT
_base_ = [
    './ce_resnet18_cifar10.py',
    '_base_/datasets/cifar_ood_sources.py',
]


def _split_test(subset, pipeline=None):
    return dict(
        type='OSRDataset',
        protocol='cifar10',
        split=_base_.osr_split,
        subset=subset,
        dataset=dict(
            type=_base_.dataset_type,
            data_root=_base_.data_root,
            data_prefix='test'),
        pipeline=pipeline)


test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='OODDataset',
        id_dataset=_split_test('known'),
        # The ID set's pipeline, where mmpretrain's inferencer reads it.
        pipeline=_base_.test_pipeline,
        ood_datasets=[
            dict(
                name='unknown',
                dataset=_split_test('unknown', _base_.test_pipeline)),
            _base_.tin_ood,
            _base_.mnist_ood,
        ],
        ood_groups=dict(near=['unknown', 'tin'], far=['mnist'])))
test_evaluator = _base_.ood_evaluator
