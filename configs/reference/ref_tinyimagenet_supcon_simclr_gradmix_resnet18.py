# THE REFERENCE'S RECIPE (gawainxu/GradMix), TinyImageNet: ONE stage (the
# evaluated features carry no "twostage": test.sh / features.sh
# "tinyimgnet_..._layersaliencymix_2,3,4_SimCLR_1.0_1.0_..._old_augmented"),
# SupCon + SimCLR + GradMix with gamma 1.0 and lambda 1.0, 600 epochs, the
# reference's network (zero_init_residual=False, layers 2-4). The plugin's
# configs/gradmix_resnet18_tiny.py differs only by mmpretrain's
# zero-initialised residual BatchNorm.
#   python tools/train.py \
#       configs/reference/ref_tinyimagenet_supcon_simclr_gradmix_resnet18.py \
#       --cfg-options osr_split=<k>
_base_ = [
    '../_base_/models/ref_contrastive_resnet18_cifar.py',
    '../_base_/datasets/tinyimagenet_osr_two_view.py',
    '../_base_/schedules/adam_cosine_600e.py',
    '../_base_/default_runtime.py',
]

model = dict(gamma=1.0, lambda_ssl=1.0)

# The kNN bank: at most 2,000 known training images per class (TinyImageNet
# has 500 per class, so all of them).
osr_bank_hook = _base_.osr_bank_hook
osr_bank_hook.dataloader.dataset.max_per_class = 2000
custom_hooks = [osr_bank_hook]
