# CIFAR-10 open-set recognition (6 known / 4 unknown classes), two SimCLR
# views per training image (loaders, evaluator and bank: osr_two_view.py).
# Layout: data/cifar10/{train,test}/<class name>/<image>; the sorted class
# names give the standard ids 0..9. (mmpretrain's binary `CIFAR10` dataset
# works too: dict(type='CIFAR10', data_root='data/cifar10', split='train'),
# with the pipelines minus LoadImageFromFile and to_rgb=False.)
# The known classes of split `osr_split` are relabelled 0..5.
_base_ = ['./osr_two_view.py']

data_root = 'data/cifar10'

data_preprocessor = dict(
    num_classes=6,
    mean=[125.307, 122.961, 113.8575],
    std=[51.5865, 50.847, 51.255])

train_dataloader = dict(
    dataset=dict(protocol='cifar10', dataset=dict(data_root=data_root)))
val_dataloader = dict(
    dataset=dict(protocol='cifar10', dataset=dict(data_root=data_root)))
test_dataloader = val_dataloader

osr_bank_hook = _base_.osr_bank_hook
osr_bank_hook.dataloader.dataset.protocol = 'cifar10'
osr_bank_hook.dataloader.dataset.dataset.data_root = data_root
custom_hooks = [osr_bank_hook]
