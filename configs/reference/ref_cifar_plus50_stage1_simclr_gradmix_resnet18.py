# THE REFERENCE'S RECIPE, CIFAR+50, stage 1 of 2: as the CIFAR-10 stage 1
# (ref_cifar10_stage1_simclr_gradmix_resnet18.py: SimCLR + GradMix, gamma
# 0, lambda 1.0, 600 epochs, the reference's network) on the 4 known
# CIFAR-10 classes. The reference's CIFAR+N launchers are two-stage too
# (train_cifar.sh, "cifar-10-100-50" with --last_model_path), run with an
# older main_supcon.py whose run names carry no layer list ("_no_"); the
# layers here are those of the evaluated CIFAR-10 runs (docs/recipes.md).
# Stage 2: ref_cifar_plus50_stage2_supcon_simclr_gradmix_resnet18.py.
_base_ = [
    '../_base_/models/ref_contrastive_resnet18_cifar.py',
    '../_base_/datasets/cifar_plus50_osr_two_view.py',
    '../_base_/schedules/adam_cosine_600e.py',
    '../_base_/default_runtime.py',
]

model = dict(gamma=0.0, lambda_ssl=1.0)

train_cfg = dict(val_interval=600)
default_hooks = dict(checkpoint=dict(interval=50, max_keep_ckpts=1))

# The kNN bank: at most 2,000 known training images per class (the
# reference's featureMerge.py keeps the first 2,000; OSRDataset draws them
# at random, seeded: docs/recipes.md).
osr_bank_hook = _base_.osr_bank_hook
osr_bank_hook.dataloader.dataset.max_per_class = 2000
custom_hooks = [osr_bank_hook]
