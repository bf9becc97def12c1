# Two-view contrastive ResNet-18 with the CIFAR stem (3x3 conv, no max
# pooling): SupCon + SimCLR with GradMix in its reference mode.
model = dict(
    type='ContrastiveClassifier',
    backbone=dict(
        type='ResNet_CIFAR',
        depth=18,
        num_stages=4,
        out_indices=(3, ),
        style='pytorch'),
    neck=dict(type='GlobalAveragePooling'),
    # 512-512-128 MLP, L2-normalised embeddings.
    projector=dict(
        type='ProjectionNeck',
        in_channels=512,
        hid_channels=512,
        out_channels=128),
    # gamma * SupCon + lambda_ssl * (SimCLR + lambda_eff * SimCLR_mix)
    gamma=1.0,
    lambda_ssl=1.2,
    loss=dict(type='SupConLoss', temperature=0.05, base_temperature=0.07),
    # The objective GradMix attributes: SimCLR on the embeddings.
    attribution_loss=dict(
        type='SupConLoss',
        temperature=0.05,
        base_temperature=0.07,
        gather_distributed=False),
    gradmix=dict(
        type='GradMix',
        attribution_layers=['backbone.layer3', 'backbone.layer4'],
        fill='noise',
        box='argmax'),
)
