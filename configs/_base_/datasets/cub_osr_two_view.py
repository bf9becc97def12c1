# CUB-200-2011 SSB open-set recognition (100 known classes; unknown: 32 Easy
# or 68 Medium + Hard) at 448x448, original layout under
# data/CUB_200_2011 (images.txt, image_class_labels.txt,
# train_test_split.txt, images/), official train/test split.
_base_ = ['./ssb_osr_two_view.py']

dataset_type = 'CUB2011'
data_root = 'data/CUB_200_2011'

data_preprocessor = dict(num_classes=100)

train_dataloader = dict(
    dataset=dict(
        protocol='cub',
        dataset=dict(type=dataset_type, data_root=data_root, split='train')))
val_dataloader = dict(
    dataset=dict(
        protocol='cub',
        dataset=dict(type=dataset_type, data_root=data_root, split='test')))
test_dataloader = val_dataloader

osr_bank_hook = _base_.osr_bank_hook
osr_bank_hook.dataloader.dataset.protocol = 'cub'
osr_bank_hook.dataloader.dataset.dataset.update(
    type=dataset_type, data_root=data_root, split='train')
custom_hooks = [osr_bank_hook]
