# THE REFERENCE'S RECIPE, CIFAR+10, stage 2 of 2: SupCon + SimCLR +
# GradMix (gamma 1.0, lambda 1.2), 10 epochs with a new optimiser, from the
# weights of ref_cifar_plus10_stage1_simclr_gradmix_resnet18.py given as
# load_from (required, RequireLoadFromHook):
#   python tools/train.py <this config> \
#       --cfg-options osr_split=<k> load_from=<stage 1 work dir>/epoch_600.pth
_base_ = [
    '../_base_/models/ref_contrastive_resnet18_cifar.py',
    '../_base_/datasets/cifar_plus10_osr_two_view.py',
    '../_base_/schedules/ref_adam_cosine_10e.py',
    '../_base_/default_runtime.py',
]

model = dict(gamma=1.0, lambda_ssl=1.2)

# Stage 1's last checkpoint (required; set by the command line).
load_from = None

default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=1))

osr_bank_hook = _base_.osr_bank_hook
osr_bank_hook.dataloader.dataset.max_per_class = 2000
custom_hooks = [osr_bank_hook, dict(type='RequireLoadFromHook')]
