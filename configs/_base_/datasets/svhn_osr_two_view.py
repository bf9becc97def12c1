# SVHN open-set recognition (6 known / 4 unknown digits), two SimCLR views
# per training image (loaders, evaluator and bank: osr_two_view.py).
# Layout: data/svhn/{train,test}/<digit>/<image> with the digit 0 in
# folder `0` (the original .mat files label it 10).
_base_ = ['./osr_two_view.py']

data_root = 'data/svhn'

data_preprocessor = dict(
    num_classes=6, mean=[111.61, 113.17, 120.56], std=[50.50, 51.26, 50.24])

train_dataloader = dict(
    dataset=dict(protocol='svhn', dataset=dict(data_root=data_root)))
val_dataloader = dict(
    dataset=dict(protocol='svhn', dataset=dict(data_root=data_root)))
test_dataloader = val_dataloader

osr_bank_hook = _base_.osr_bank_hook
osr_bank_hook.dataloader.dataset.protocol = 'svhn'
osr_bank_hook.dataloader.dataset.dataset.data_root = data_root
custom_hooks = [osr_bank_hook]
