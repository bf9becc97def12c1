# The GradMix reference implementation's network (gawainxu/GradMix,
# networks/resnet_big.py SupConResNet 'resnet18'): the CIFAR-stem ResNet-18
# of contrastive_resnet18_cifar.py (same 512-512-128 projection MLP, same
# losses) with the reference's initialisation and attribution layers.
# - zero_init_residual=False: resnet_big.py's ResNet leaves the last
#   BatchNorm of each residual branch at weight 1 (mmpretrain's ResNet_CIFAR
#   zero-initialises it by default). Both use Kaiming-normal (fan_out)
#   convolutions and BatchNorm weight 1 / bias 0.
# - Attribution layers layer2, layer3 and layer4 (the outputs of their last
#   blocks): the launcher value `--grad_layers "2,3,4"` of the evaluated
#   CIFAR-10 and TinyImageNet runs. datautil.py's parallel_gradients hooks
#   `encoder.layer{k}[-1]` for every k in grad_layers (1-based), the path of
#   every run with the default --grad_splits 1; the 0-based list of
#   gradient_cache.py (--grad_splits > 1) has no index 4. See
#   docs/recipes.md, "Which layers '2,3,4' are".
_base_ = ['./contrastive_resnet18_cifar.py']

ref_attribution_layers = [
    'backbone.layer2', 'backbone.layer3', 'backbone.layer4'
]

model = dict(
    backbone=dict(zero_init_residual=False),
    gradmix=dict(attribution_layers=ref_attribution_layers))
