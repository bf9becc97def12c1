# Stage 1 of the reference's two-stage CIFAR-10 recipe WITHOUT GradMix:
# self-supervised SimCLR alone (gamma 0, lambda 1.0), 600 epochs, the
# reference's network. The ablation of the stage-1 GradMix; stage 2 is the
# same ref_cifar10_stage2_supcon_simclr_gradmix_resnet18.py.
_base_ = ['./ref_cifar10_stage1_simclr_gradmix_resnet18.py']

model = dict(gradmix=None)
