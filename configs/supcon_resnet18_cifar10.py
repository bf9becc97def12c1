# Baseline: SupCon + SimCLR without GradMix, ResNet-18, CIFAR-10 OSR
# (same data, model and schedule as gradmix_resnet18_cifar10.py; the
# plugin's own baseline).
# Select the open-set split (0-4) with: --cfg-options osr_split=<k>
_base_ = ['./gradmix_resnet18_cifar10.py']

model = dict(gradmix=None)
