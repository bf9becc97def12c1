# CIFAR-10, all 10 classes, two SimCLR views per image (two_view.py) and
# no labels needed: self-supervised pre-training (evaluated by a linear
# probe, see cifar10.py). Layout: data/cifar10/{train,test}/<class
# name>/<image>.
_base_ = ['./two_view.py']

data_root = 'data/cifar10'

data_preprocessor = dict(
    mean=[125.307, 122.961, 113.8575], std=[51.5865, 50.847, 51.255])

train_dataloader = dict(
    batch_size=256,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='default_collate'),
    dataset=dict(
        type=_base_.dataset_type,
        data_root=data_root,
        data_prefix='train',
        pipeline=_base_.train_pipeline))

# No evaluation during pre-training: the linear probe measures it.
val_dataloader = None
val_evaluator = None
test_dataloader = None
test_evaluator = None
