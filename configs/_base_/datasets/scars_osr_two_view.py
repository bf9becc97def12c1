# Stanford Cars SSB open-set recognition (98 known classes; unknown: 76
# Easy or 22 Medium + Hard) at 448x448, devkit layout under
# data/stanford_cars (devkit/*.mat, cars_train/, cars_test/) or class
# folders {train,test}/<class name>/.
_base_ = ['./ssb_osr_two_view.py']

dataset_type = 'Cars'
data_root = 'data/stanford_cars'

data_preprocessor = dict(num_classes=98)

train_dataloader = dict(
    dataset=dict(
        protocol='scars',
        dataset=dict(type=dataset_type, data_root=data_root, split='train')))
val_dataloader = dict(
    dataset=dict(
        protocol='scars',
        dataset=dict(type=dataset_type, data_root=data_root, split='test')))
test_dataloader = val_dataloader

osr_bank_hook = _base_.osr_bank_hook
osr_bank_hook.dataloader.dataset.protocol = 'scars'
osr_bank_hook.dataloader.dataset.dataset.update(
    type=dataset_type, data_root=data_root, split='train')
custom_hooks = [osr_bank_hook]
