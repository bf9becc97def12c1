# OpenOOD v1.5's CIFAR-10 benchmark, read from OpenOOD's own image lists:
# ID = test_cifar10.txt; near-OOD = CIFAR-100 and Tiny-ImageNet
# (test_cifar100.txt, test_tin.txt); far-OOD = MNIST, SVHN, Textures and
# Places365 (test_mnist.txt, test_svhn.txt, test_texture.txt,
# test_places365.txt), the images resized to 32x32 (bilinear) as OpenOOD
# does. Model and training: ce_resnet18_cifar10_ood.py (all 10 classes).
# The scores OpenOOD also implements, with OpenOOD's defaults, on the pooled
# features, and OpenOOD's metric definitions next to the plugin's. ViM
# (dim=256), SHE and NNGuide (K=100, alpha=0.01) need the full 50,000-image
# bank of a trained 512-d ResNet-18; add them to `scores` for a real run
# (configs/all_scores_resnet18_digits.py lists every score):
#   python tools/test.py configs/ce_resnet18_cifar10_openood.py CKPT
# `openood_root` holds benchmark_imglist/ and images_classic/ (OpenOOD's
# data folder, see its scripts/download/download.py); it is substituted
# when the config is read, so edit it here (or override every
# `...data_root` of the test datasets).
_base_ = ['./ce_resnet18_cifar10_ood.py']

openood_root = 'data/openood'


def _imglist(source, pipeline=None):
    dataset = dict(
        type='OpenOODImglist',
        data_root=openood_root,
        benchmark='cifar10',
        source=source,
        split='test')
    return dataset if pipeline is None else dict(dataset, pipeline=pipeline)


test_dataloader = dict(
    dataset=dict(
        _delete_=True,
        type='OODDataset',
        id_dataset=_imglist('cifar10'),
        # The ID set's pipeline, where mmpretrain's inferencer reads it.
        pipeline=_base_.ood_pipeline,
        ood_datasets=[
            dict(name=name, dataset=_imglist(name, _base_.ood_pipeline))
            for name in ('cifar100', 'tin', 'mnist', 'svhn', 'texture',
                         'places365')
        ],
        ood_groups=dict(
            near=['cifar100', 'tin'],
            far=['mnist', 'svhn', 'texture', 'places365'])))
test_evaluator = dict(
    type='OSRMetric',
    scores=('msp', 'temp_scaling', 'mls', 'energy', 'gen', 'klm', 'react',
            'ash', 'scale', 'dice', 'rmds', 'fdbd', 'gradnorm', 'mahalanobis',
            'knn'),
    feature='feats',
    openood_compat=True)
