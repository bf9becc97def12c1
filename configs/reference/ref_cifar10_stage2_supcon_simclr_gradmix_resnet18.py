# THE REFERENCE'S RECIPE (gawainxu/GradMix), CIFAR-10, stage 2 of 2:
# SupCon + SimCLR + SimCLR_mix with GradMix (gamma 1.0, lambda 1.2:
# main_supcon_old.py --method_gama 1.0 --method_lam 1.2 --mixup_positive
# True --old_augmented True --last_model_path <stage 1>/last.pth, temp3.sh),
# 10 epochs with a NEW optimiser and cosine schedule, starting from the
# weights of stage 1 (ref_cifar10_stage1_simclr_gradmix_resnet18.py). The
# evaluated CIFAR-10 features of the reference are this stage's
# ("..._layersaliencymix_2,3,4_SimCLR_1.0_1.2_..._twostage_old_augmented",
# test.sh / features.sh).
#
# Stage 1's weights come through mmengine's `load_from` (weights only: the
# optimiser, scheduler and epoch counter start fresh, as the reference's
# --last_model_path does). Without it the run is refused
# (RequireLoadFromHook), since 10 epochs from random weights are not this
# recipe:
#   python tools/train.py <this config> \
#       --cfg-options osr_split=<k> load_from=<stage 1 work dir>/epoch_600.pth
# tools/run_protocol.py chains the stages and passes stage 1's last
# checkpoint the same way.
_base_ = [
    '../_base_/models/ref_contrastive_resnet18_cifar.py',
    '../_base_/datasets/cifar10_osr_two_view.py',
    '../_base_/schedules/ref_adam_cosine_10e.py',
    '../_base_/default_runtime.py',
]

model = dict(gamma=1.0, lambda_ssl=1.2)

# Stage 1's last checkpoint (required; set by the command line).
load_from = None

default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=1))
# The kNN bank: at most 2,000 known training images per class, as the
# reference's featureMerge.py (there the FIRST 2,000 of each class in
# dataset order; OSRDataset draws them at random, seeded: docs/recipes.md).
osr_bank_hook = _base_.osr_bank_hook
osr_bank_hook.dataloader.dataset.max_per_class = 2000
custom_hooks = [osr_bank_hook, dict(type='RequireLoadFromHook')]
