# The reference's two-stage recipe at demo scale, stage 2 of 2: SupCon +
# SimCLR + SimCLR_mix with GradMix (gamma 1.0, lambda 1.2), a new optimiser
# and cosine schedule over 3 epochs, from stage 1's weights
# (ref_digits_stage1_simclr_gradmix_resnet18.py or
# ref_digits_stage1_simclr_resnet18.py) given as `load_from`, required
# (RequireLoadFromHook):
#   python tools/train.py \
#       configs/reference/ref_digits_stage2_supcon_simclr_gradmix_resnet18.py \
#       --cfg-options load_from=<stage 1 work dir>/epoch_10.pth
# The reference fine-tunes 10 epochs after 600 (CIFAR-10); 3 after 10 keeps
# the second stage short against the first here.
_base_ = ['./ref_digits_stage1_simclr_gradmix_resnet18.py']

model = dict(gamma=1.0, lambda_ssl=1.2)

max_epochs = 3
param_scheduler = dict(end=max_epochs, T_max=max_epochs)
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)

# Stage 1's last checkpoint (required; set by the command line).
load_from = None

custom_hooks = [_base_.osr_bank_hook, dict(type='RequireLoadFromHook')]
