# Cross-entropy + GradMix as an mmpretrain batch augment: the box around
# the LayerCAM peak (ground-truth logit, stages 3 and 4) is filled with the
# same box of a shuffled partner image and the one-hot labels are mixed by
# area, like CutMix. GradMixModelHook hands the model to GradMix.
# Select the open-set split (0-4) with: --cfg-options osr_split=<k>
_base_ = ['./ce_resnet18_cifar10.py']

model = dict(
    head=dict(loss=dict(type='CrossEntropyLoss', use_soft=True)),
    train_cfg=dict(
        augments=dict(
            type='GradMix',
            attribution_layers=['backbone.layer3', 'backbone.layer4'],
            fill='partner',
            objective='label')))

custom_hooks = [_base_.osr_bank_hook, dict(type='GradMixModelHook')]
