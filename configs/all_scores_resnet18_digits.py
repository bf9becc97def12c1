# Every registered open-set score on the embedded digits demo
# (gradmix_resnet18_digits.py) with a linear classifier head on the detached
# pooled features (so the logit and final-layer scores apply). The test
# evaluator lists every score of gradmix_plugin.registry.SCORES, with
# defaults sized for the small digits bank (about 650 training vectors of
# 128 dimensions): ViM's principal subspace 64-d, NNGuide's guide bank half
# the training set with K=10.
#   python tools/train.py configs/all_scores_resnet18_digits.py
#   python tools/test.py configs/all_scores_resnet18_digits.py CKPT
_base_ = ['./gradmix_resnet18_digits.py']

model = dict(
    head=dict(type='OSRLinearClsHead', num_classes=6, in_channels=128))
test_evaluator = dict(
    type='OSRMetric',
    scores=[
        'class_knn', 'knn', 'mahalanobis', 'msp', 'mls', 'energy',
        'temp_scaling', 'gen', 'klm', 'react', 'ash', 'scale', 'dice',
        dict(type='vim', dim=64), 'rmds', 'she',
        dict(type='nnguide', K=10, alpha=0.5), 'fdbd', 'gradnorm'
    ],
    feature='embeds',
    knn_k=10)
