# CIFAR+10 open-set recognition: 4 non-animal CIFAR-10 classes known, 10
# animal classes of CIFAR-100 unknown; two SimCLR views per training image
# (the CIFAR-10 loaders of cifar10_osr_two_view.py, another protocol and
# an unknown test set).
# Layouts: data/cifar10/{train,test}/<class name>/<image> and
# data/cifar100/test/<fine class name>/<image> (sorted names give the
# standard fine-label ids 0..99).
_base_ = ['./cifar10_osr_two_view.py']

unknown_data_root = 'data/cifar100'

data_preprocessor = dict(num_classes=4)

train_dataloader = dict(dataset=dict(protocol='cifar_plus10'))
val_dataloader = dict(
    dataset=dict(
        protocol='cifar_plus10',
        unknown_dataset=dict(
            type=_base_.dataset_type,
            data_root=unknown_data_root,
            data_prefix='test')))
test_dataloader = val_dataloader

osr_bank_hook = _base_.osr_bank_hook
osr_bank_hook.dataloader.dataset.protocol = 'cifar_plus10'
custom_hooks = [osr_bank_hook]
