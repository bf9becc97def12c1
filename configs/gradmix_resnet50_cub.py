# GradMix (SupCon + SimCLR + GradMix), ResNet-50 (ImageNet stem),
# CUB-200-2011 Semantic Shift Benchmark at 448x448, 600 epochs, batch 32
# images (two views each). Attribution on stages 3 and 4; lambda_ssl 1.2.
# Select the unknown classes with: --cfg-options osr_split=easy (or hard,
# the default); the training is the same for both.
_base_ = [
    '_base_/models/contrastive_resnet50.py',
    '_base_/datasets/cub_osr_two_view.py',
    '_base_/schedules/adam_cosine_600e.py',
    '_base_/default_runtime.py',
]
