# OOD sets of the CIFAR benchmarks of OpenOOD v1.5, as OODDataset entries
# (dict(name=..., dataset=...)): Tiny-ImageNet (its val split; OpenOOD's
# near-OOD `tin`) and MNIST (test split; far-OOD). Every OOD image is loaded
# in colour (LoadImageFromFile's color_type='color' decodes the grayscale
# MNIST PNGs and grayscale Tiny-ImageNet JPEGs to 3 channels) and resized to
# the 32x32 CIFAR size (Tiny-ImageNet is 64x64, MNIST 28x28), bilinear, as
# OpenOOD does.
# Layouts: data/tiny-imagenet-200/{wnids.txt,val/...} (the original one, see
# TinyImageNet) and data/mnist/test/<digit>/<image>. Other roots:
#   --cfg-options test_dataloader.dataset.ood_datasets.<i>.dataset.data_root=DIR
# (<i> = the position of the source in `ood_datasets` of the config).
ood_image_size = 32
ood_pipeline = [
    dict(type='LoadImageFromFile', color_type='color'),
    dict(
        type='Resize',
        scale=(ood_image_size, ood_image_size),
        interpolation='bilinear'),
    dict(type='PackInputs'),
]
tin_ood = dict(
    name='tin',
    dataset=dict(
        type='TinyImageNet',
        data_root='data/tiny-imagenet-200',
        split='val',
        pipeline=ood_pipeline))
mnist_ood = dict(
    name='mnist',
    dataset=dict(
        type='CustomDataset',
        data_root='data/mnist',
        data_prefix='test',
        pipeline=ood_pipeline))
# The rest of OpenOOD's CIFAR-10 benchmark from folders of images (any
# layout CustomDataset reads; with class folders or a flat folder plus
# `with_label=False`), e.g.
#   dict(name='cifar100', dataset=dict(type='CustomDataset',
#        data_root='data/cifar100', data_prefix='test',
#        pipeline=ood_pipeline))
# and likewise 'svhn', 'texture' (DTD images) and 'places365'.

# The evaluator of the OOD configs: logit, Mahalanobis and kNN scores on the
# pooled features, and OpenOOD's own definitions next to the plugin's.
ood_evaluator = dict(
    type='OSRMetric',
    scores=('msp', 'mls', 'energy', 'mahalanobis', 'knn', 'class_knn'),
    feature='feats',
    openood_compat=True)
