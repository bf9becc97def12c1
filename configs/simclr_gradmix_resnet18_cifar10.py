# Self-supervised: SimCLR + GradMix (gamma 0, no labels), ResNet-18, all of
# CIFAR-10, 600 epochs (the plugin's own recipe). Measure it with
# linear_probe_resnet18_cifar10.py (the plugin's probe) or
# reference/ref_linear_probe_projection_cifar10.py (the reference's).
_base_ = [
    '_base_/models/contrastive_resnet18_cifar.py',
    '_base_/datasets/cifar10_two_view.py',
    '_base_/schedules/adam_cosine_600e.py',
    '_base_/default_runtime.py',
]

model = dict(gamma=0.0, lambda_ssl=1.0)

# No evaluation during pre-training.
val_cfg = None
test_cfg = None
default_hooks = dict(checkpoint=dict(interval=50, max_keep_ckpts=1))
