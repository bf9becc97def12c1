# Stage 1 of the digits two-stage recipe WITHOUT GradMix: self-supervised
# SimCLR alone (gamma 0, lambda 1.0). Stage 2 is the same
# ref_digits_stage2_supcon_simclr_gradmix_resnet18.py.
_base_ = ['./ref_digits_stage1_simclr_gradmix_resnet18.py']

model = dict(gradmix=None)
