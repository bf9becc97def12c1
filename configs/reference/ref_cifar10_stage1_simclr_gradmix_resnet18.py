# THE REFERENCE'S RECIPE (gawainxu/GradMix), CIFAR-10, stage 1 of 2:
# self-supervised SimCLR + GradMix (gamma 0, lambda 1.0: main_supcon_old.py
# --method SimCLR --method_gama 0.0 --method_lam 1.0 --mixup_positive True
# --positive_method layersaliencymix, train_cifar.sh), 600 epochs, on the
# known-class training images of the open-set split (labels unused), with
# the reference's network (zero_init_residual=False, attribution layers
# layer2-4: _base_/models/ref_contrastive_resnet18_cifar.py).
# Stage 2: ref_cifar10_stage2_supcon_simclr_gradmix_resnet18.py, from this
# stage's last checkpoint. Values side by side: docs/recipes.md.
#   python tools/train.py \
#       configs/reference/ref_cifar10_stage1_simclr_gradmix_resnet18.py \
#       --cfg-options osr_split=<k>
_base_ = [
    '../_base_/models/ref_contrastive_resnet18_cifar.py',
    '../_base_/datasets/cifar10_osr_two_view.py',
    '../_base_/schedules/adam_cosine_600e.py',
    '../_base_/default_runtime.py',
]

model = dict(gamma=0.0, lambda_ssl=1.0)

# Only the last checkpoint matters (stage 2 starts from it); the OSR
# metrics of the self-supervised features are computed at the end.
train_cfg = dict(val_interval=600)
default_hooks = dict(checkpoint=dict(interval=50, max_keep_ckpts=1))

# The kNN bank: at most 2,000 known training images per class, as the
# reference's featureMerge.py (there the FIRST 2,000 of each class in
# dataset order; OSRDataset draws them at random, seeded: docs/recipes.md).
osr_bank_hook = _base_.osr_bank_hook
osr_bank_hook.dataloader.dataset.max_per_class = 2000
custom_hooks = [osr_bank_hook]
