# THE REFERENCE'S MNIST RUN (gawainxu/GradMix train_mnist.sh): main_supcon.py
# --method SimCLR --method_gama 1.0 --method_lam 3.0 --epochs 10
# --batch_size 256 --cosine True --lr_decay_rate 0.8 --mixup_positive False.
# `--mixup_positive` is an argparse `type=bool` flag: bool('False') is True,
# so the reference runs its mixing forward, but that run's loss never uses
# it: the model trained is SupCon + SimCLR WITHOUT GradMix (docs/recipes.md,
# "The reference's type=bool flags"). Hence gradmix=None here.
# The reference's MNIST data: 1-channel 28x28 images, only ToTensor (0..1,
# no mean / std normalisation) and RandomRotation(-5, 5) per view (no crop,
# flip or colour); its ResNet-18 takes 1 input channel. The test uses the
# class-wise kNN with K=32 (features_mnist.sh / main_testing.py; 35 in some
# launchers).
# Layout: data/mnist/{train,test}/<digit>/<image>.png (grayscale).
_base_ = [
    '../_base_/models/ref_contrastive_resnet18_cifar.py',
    '../_base_/datasets/osr_two_view.py',
    '../_base_/schedules/adam_cosine_demo.py',
    '../_base_/default_runtime.py',
]

data_root = 'data/mnist'

model = dict(
    backbone=dict(in_channels=1),
    gamma=1.0,
    lambda_ssl=3.0,
    gradmix=None)

# 0..255 pixels to 0..1 (ToTensor), nothing else; one channel.
data_preprocessor = dict(
    num_classes=6, mean=[0.0], std=[255.0], to_rgb=False)

view_pipeline = [
    dict(type='NumpyToPIL', to_rgb=False),
    dict(type='torchvision/RandomRotation', degrees=(-5, 5)),
    dict(type='PILToNumpy', to_bgr=False),
]
train_pipeline = [
    dict(type='LoadImageFromFile', color_type='grayscale'),
    dict(type='MultiView', num_views=2, transforms=[view_pipeline]),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile', color_type='grayscale'),
    dict(type='PackInputs'),
]

train_dataloader = dict(
    dataset=dict(
        protocol='mnist',
        dataset=dict(data_root=data_root, pipeline=train_pipeline)))
val_dataloader = dict(
    dataset=dict(
        protocol='mnist',
        pipeline=test_pipeline,
        dataset=dict(data_root=data_root)))
test_dataloader = val_dataloader

val_evaluator = dict(class_knn_k=32)
test_evaluator = val_evaluator

osr_bank_hook = _base_.osr_bank_hook
osr_bank_hook.dataloader.dataset.protocol = 'mnist'
osr_bank_hook.dataloader.dataset.max_per_class = 2000
osr_bank_hook.dataloader.dataset.dataset.update(
    data_root=data_root, pipeline=test_pipeline)
custom_hooks = [osr_bank_hook]
