# FGVC-Aircraft SSB open-set recognition (50 known variants; unknown: 20
# Easy or 30 Medium + Hard) at 448x448, original layout under
# data/fgvc-aircraft-2013b/data (variants.txt, images_variant_*.txt,
# images/); trained on trainval (train + val), tested on test.
_base_ = ['./ssb_osr_two_view.py']

dataset_type = 'Aircraft'
data_root = 'data/fgvc-aircraft-2013b'

data_preprocessor = dict(num_classes=50)

train_dataloader = dict(
    dataset=dict(
        protocol='aircraft',
        dataset=dict(type=dataset_type, data_root=data_root, split='trainval')))
val_dataloader = dict(
    dataset=dict(
        protocol='aircraft',
        dataset=dict(type=dataset_type, data_root=data_root, split='test')))
test_dataloader = val_dataloader

osr_bank_hook = _base_.osr_bank_hook
osr_bank_hook.dataloader.dataset.protocol = 'aircraft'
osr_bank_hook.dataloader.dataset.dataset.update(
    type=dataset_type, data_root=data_root, split='trainval')
custom_hooks = [osr_bank_hook]
