# CIFAR-10 open-set recognition for cross-entropy classifiers: the same
# split, evaluation and bank as cifar10_osr_two_view.py, one view per
# training image (random crop with padding and horizontal flip).
_base_ = ['./cifar10_osr_two_view.py']

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=128, dataset=dict(dataset=dict(pipeline=train_pipeline)))

# Logit scores (MSP, max logit, energy) and kNN on the pooled features.
val_evaluator = dict(
    scores=('msp', 'mls', 'energy', 'class_knn', 'knn'), feature='feats')
test_evaluator = val_evaluator
