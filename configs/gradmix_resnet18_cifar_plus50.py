# GradMix (SupCon + SimCLR + GradMix), ResNet-18, CIFAR+50 OSR, 600 epochs:
# the plugin's own single-stage recipe; the reference's is two-stage
# (configs/reference/ref_cifar_plus50_stage{1,2}_*.py).
# Select the open-set split (0-4) with: --cfg-options osr_split=<k>
_base_ = [
    '_base_/models/contrastive_resnet18_cifar.py',
    '_base_/datasets/cifar_plus50_osr_two_view.py',
    '_base_/schedules/adam_cosine_600e.py',
    '_base_/default_runtime.py',
]

model = dict(
    gamma=1.0,
    lambda_ssl=1.2,
    gradmix=dict(attribution_layers=['backbone.layer3', 'backbone.layer4']))
