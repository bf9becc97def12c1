# GradMix (SupCon + SimCLR + GradMix), ResNet-18, MNIST OSR, 600 epochs:
# the plugin's own recipe. The reference's MNIST run trains without
# GradMix, lambda 3.0, 10 epochs, 1-channel 28x28
# (configs/reference/ref_mnist_supcon_simclr_resnet18.py).
# Select the open-set split (0-4) with: --cfg-options osr_split=<k>
_base_ = [
    '_base_/models/contrastive_resnet18_cifar.py',
    '_base_/datasets/mnist_osr_two_view.py',
    '_base_/schedules/adam_cosine_600e.py',
    '_base_/default_runtime.py',
]

model = dict(
    gamma=1.0,
    lambda_ssl=1.2,
    gradmix=dict(attribution_layers=['backbone.layer3', 'backbone.layer4']))
