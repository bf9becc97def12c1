# CIFAR+50 open-set recognition: 4 non-animal CIFAR-10 classes known, 50
# animal classes of CIFAR-100 unknown; two SimCLR views per training image.
# The data and loaders of cifar_plus10_osr_two_view.py, another protocol.
# Layouts: data/cifar10/{train,test}/<class name>/<image> and
# data/cifar100/test/<fine class name>/<image> (sorted names give the
# standard fine-label ids 0..99).
_base_ = ['./cifar_plus10_osr_two_view.py']

train_dataloader = dict(dataset=dict(protocol='cifar_plus50'))
val_dataloader = dict(dataset=dict(protocol='cifar_plus50'))
test_dataloader = val_dataloader

osr_bank_hook = _base_.osr_bank_hook
osr_bank_hook.dataloader.dataset.protocol = 'cifar_plus50'
custom_hooks = [osr_bank_hook]
