"""Training step time, peak memory and attribution cost of every recipe.

Times one full training step (``model.train_step`` with an mmengine
``OptimWrapper``: data preprocessing, batch augments, forward, backward and
optimizer update) on synthetic data for each recipe, with the model and
optimizer of the recipe's config in ``configs/`` (CIFAR-10 OSR, ResNet-18
with the CIFAR stem, Adam; ``--width`` narrows the backbone):

- ``supcon_simclr``: two-view ``ContrastiveClassifier``, SupCon + SimCLR;
- ``supcon_simclr_gradmix``: the same with the reference GradMix mode;
- ``ce``: mmpretrain ``ImageClassifier`` with cross-entropy;
- ``ce_mixup``, ``ce_cutmix``: with mmpretrain's Mixup / CutMix;
- ``ce_gradmix``: with ``GradMix(fill='partner')`` in the data preprocessor,
  the model attached by ``GradMixModelHook`` as in training.

``--backbones`` adds other backbone families, each a GradMix recipe of its
config and the same config without GradMix as its baseline (recipe names
end in the family): ``vit`` (the small ViT, CE and contrastive), ``convnext``
(CE) and ``resnet50`` (ImageNet-stem ResNet-50, contrastive, at twice
``--image-size``: TinyImageNet's 64x64 by default); see
:data:`FAMILY_CONFIGS`.

The repetitions are interleaved (one step of every recipe per repetition,
round-robin), and the median and inter-quartile range are reported with the
ratio to the matching baseline (``supcon_simclr`` for the GradMix
contrastive recipe, ``ce`` for the CE variants).

It also times the attribution alone against a forward/backward:

- contrastive reference mode: the extra work GradMix adds to the training
  forward before the masked forward (attribution loss,
  ``torch.autograd.grad`` with respect to the hooked activations,
  ``layercam_maps`` and ``GradMix.mask``) against the forward and backward
  of the no-GradMix model;
- CE mode: the standalone ``LayerCAM`` pass against the forward and
  backward of the CE model.

Example::

    OMP_NUM_THREADS=2 python benchmarks/benchmark_training.py --repeats 7
    OMP_NUM_THREADS=2 python benchmarks/benchmark_training.py --width 16 \
        --backbones resnet18 vit convnext resnet50
"""
import argparse
import os
import os.path as osp
from types import SimpleNamespace
from typing import Callable, Dict, List, Tuple

import torch
from benchmark_utils import (
    add_step_args,
    apply_quick,
    interleaved_timings,
    machine_info,
    markdown_table,
    peak_memory,
    summarize,
    write_json,
)
from mmengine.config import Config, ConfigDict
from mmengine.dataset import default_collate
from mmengine.logging import MMLogger
from mmengine.optim import build_optim_wrapper
from mmpretrain.registry import MODELS
from mmpretrain.structures import DataSample

from gradmix_plugin.attribution import LayerCAM, layercam_maps
from gradmix_plugin.engine.hooks import GradMixModelHook
from gradmix_plugin.engine.hooks.gradmix_model_hook import (
    find_gradmix_augments,
)

CONTRASTIVE_RECIPES = ('supcon_simclr', 'supcon_simclr_gradmix')
RECIPES = CONTRASTIVE_RECIPES + ('ce', 'ce_mixup', 'ce_cutmix', 'ce_gradmix')
BASELINES = dict(
    supcon_simclr='supcon_simclr',
    supcon_simclr_gradmix='supcon_simclr',
    ce='ce',
    ce_mixup='ce',
    ce_cutmix='ce',
    ce_gradmix='ce')
REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
RECIPE_CONFIGS = dict(
    supcon_simclr='configs/supcon_resnet18_cifar10.py',
    supcon_simclr_gradmix='configs/gradmix_resnet18_cifar10.py',
    ce='configs/ce_resnet18_cifar10.py',
    ce_mixup='configs/ce_mixup_resnet18_cifar10.py',
    ce_cutmix='configs/ce_cutmix_resnet18_cifar10.py',
    ce_gradmix='configs/ce_gradmix_resnet18_cifar10.py')
# Backbone families beyond the CIFAR-stem ResNet-18: family -> {GradMix
# recipe: config}. Each adds '<recipe>_<family>' and its baseline
# '<baseline>_<family>', the same config without GradMix.
FAMILY_CONFIGS = dict(
    vit=dict(
        ce_gradmix='configs/ce_gradmix_vit_cifar10.py',
        supcon_simclr_gradmix='configs/gradmix_vit_cifar10.py'),
    convnext=dict(ce_gradmix='configs/ce_gradmix_convnext_cifar10.py'),
    resnet50=dict(supcon_simclr_gradmix='configs/gradmix_resnet50_tiny.py'))
FAMILIES = ('resnet18', ) + tuple(FAMILY_CONFIGS)
# Image side of a family as a multiple of --image-size.
FAMILY_IMAGE_SCALE = dict(resnet50=2)
# Recipe name -> (recipe of RECIPES it runs, family).
RECIPE_FAMILIES = {recipe: (recipe, 'resnet18') for recipe in RECIPES}
for _family, _configs in FAMILY_CONFIGS.items():
    for _recipe, _config in _configs.items():
        for _mode in (BASELINES[_recipe], _recipe):
            RECIPE_FAMILIES[f'{_mode}_{_family}'] = (_mode, _family)
            RECIPE_CONFIGS[f'{_mode}_{_family}'] = _config
            BASELINES[f'{_mode}_{_family}'] = \
                f'{BASELINES[_recipe]}_{_family}'


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Benchmark the training step of every recipe '
        '(median/IQR step time, ratio to the baseline, peak memory) and '
        'the cost of the attribution pass.')
    add_step_args(
        parser,
        'base_channels (and stem_channels) of ResNet_CIFAR-18 and ResNet-50, '
        'first-stage channels of ConvNeXt, a third of the ViT width; 64 '
        'leaves every config as it is',
        repeats=7,
        warmup=2,
        out='benchmarks/results/training.json')
    parser.add_argument(
        '--recipes', nargs='+', choices=RECIPES, default=list(RECIPES),
        help='recipes to time; a recipe\'s baseline is added if missing '
        '(default: all)')
    parser.add_argument(
        '--backbones', nargs='+', choices=FAMILIES, default=['resnet18'],
        help='backbone families: resnet18 runs --recipes, the others their '
        'GradMix recipes and baselines (default: resnet18)')
    args = apply_quick(parser.parse_args(argv))
    recipes = list(args.recipes) if 'resnet18' in args.backbones else []
    recipes += [BASELINES[r] for r in recipes if BASELINES[r] not in recipes]
    args.recipes = [r for r in RECIPES if r in recipes] + [
        recipe for recipe, (_, family) in RECIPE_FAMILIES.items()
        if family in args.backbones and family != 'resnet18'
    ]
    return args


def is_contrastive(recipe: str) -> bool:
    """Whether a recipe (of any family) trains a ContrastiveClassifier."""
    return RECIPE_FAMILIES[recipe][0] in CONTRASTIVE_RECIPES


def image_size_of(recipe: str, image_size: int) -> int:
    """The image side of a recipe's family for ``--image-size``."""
    return image_size * FAMILY_IMAGE_SCALE.get(RECIPE_FAMILIES[recipe][1], 1)


def narrow_backbone(backbone: ConfigDict, width: int,
                    image_size: int) -> int:
    """Narrow a backbone config to ``width`` (64 leaves it as it is).

    Args:
        backbone (ConfigDict): ``ResNet_CIFAR`` or ``ResNet`` (stem and base
            channels), ``ConvNeXt`` (stage channels ``width * (1, 2, 4,
            8)``) or ``VisionTransformer`` (``3 * width`` wide, its
            ``img_size`` set to ``image_size``).
        width (int): The width.
        image_size (int): The image side.

    Returns:
        int: The backbone's output channels.
    """
    if backbone.type == 'VisionTransformer':
        scale = width / 64
        backbone.arch.update(
            embed_dims=round(backbone.arch.embed_dims * scale),
            feedforward_channels=round(
                backbone.arch.feedforward_channels * scale))
        backbone.img_size = image_size
        return backbone.arch.embed_dims
    if backbone.type == 'ConvNeXt':
        backbone.arch.channels = [width * 2**stage for stage in range(4)]
        return 8 * width
    backbone.update(stem_channels=width, base_channels=width)
    return (32 if backbone.get('depth', 18) >= 50 else 8) * width


def load_recipe_config(recipe: str, width: int,
                       image_size: int = 32) -> Config:
    """The config of a recipe, as users run it, narrowed to ``width``.

    The top-level ``data_preprocessor`` of the config is merged into the
    model as mmengine's ``Runner`` does, and the backbone is narrowed by
    :func:`narrow_backbone` (ResNet-18: ``width`` base channels, the pooled
    features have ``8 * width``). The baseline of another family is its
    GradMix config without GradMix.

    Args:
        recipe (str): One of :data:`RECIPES` or of the families (see
            :data:`RECIPE_CONFIGS`).
        width (int): The width; 64 leaves the model as it is.
        image_size (int): The side of the training images (the ViT's
            ``img_size``). Defaults to 32.

    Returns:
        Config: The whole config, ``model`` adjusted.
    """
    cfg = Config.fromfile(osp.join(REPO, RECIPE_CONFIGS[recipe]))
    model = cfg.model
    if cfg.get('data_preprocessor') is not None:
        model.setdefault('data_preprocessor', cfg.data_preprocessor)
    channels = narrow_backbone(model.backbone, width, image_size)
    for part in ('projector', 'head'):
        if model.get(part) is not None:
            model[part].in_channels = channels
    mode, family = RECIPE_FAMILIES[recipe]
    if family != 'resnet18' and 'gradmix' not in mode:
        if model.pop('train_cfg', None) is not None:  # CE: the augment
            model.head.loss.use_soft = False  # hard labels, as ce_resnet18
        if 'gradmix' in model:
            model.gradmix = None
    return cfg


def build_model(recipe: str, model_cfg: ConfigDict,
                device: torch.device) -> torch.nn.Module:
    """Build a recipe's model in training mode on ``device``.

    A model with GradMix batch augments (CE mode) is attached to them by
    :class:`GradMixModelHook`, as at the start of training.
    """
    model = MODELS.build(model_cfg)
    model.init_weights()
    model.to(device).train()
    if find_gradmix_augments(model):
        runner = SimpleNamespace(
            model=model, logger=MMLogger.get_current_instance())
        GradMixModelHook().before_train(runner)
    return model


class SyntheticBatch:
    """A collated batch of random uint8 images and labels.

    Args:
        batch_size (int): Images in the batch.
        image_size (int): Side of the square images.
        num_classes (int): Labels are drawn from ``range(num_classes)``.
        num_views (int): 1 gives an ``inputs`` tensor, more a list of view
            tensors as mmpretrain's ``MultiView`` + ``PackInputs`` and
            ``default_collate`` produce.
        generator (torch.Generator): Source of the random draws.
    """

    def __init__(self, batch_size: int, image_size: int, num_classes: int,
                 num_views: int, generator: torch.Generator):
        shape = (batch_size, 3, image_size, image_size)
        self.views = [
            torch.randint(0, 256, shape, dtype=torch.uint8,
                          generator=generator) for _ in range(num_views)
        ]
        self.labels = torch.randint(
            0, num_classes, (batch_size, ), generator=generator)

    def data(self) -> dict:
        """A fresh collated batch (new data samples: batch augments write
        mixed scores into them)."""
        samples = []
        for index, label in enumerate(self.labels.tolist()):
            views = [view[index] for view in self.views]
            samples.append(
                dict(
                    inputs=views if len(views) > 1 else views[0],
                    data_samples=DataSample().set_gt_label(label)))
        return default_collate(samples)


def forward_backward(model: torch.nn.Module, data: dict) -> Callable:
    """Forward and backward of a preprocessed batch, no optimizer update
    (the gradients are dropped after the backward)."""

    def run():
        losses = model(**data, mode='loss')
        loss, _ = model.parse_losses(losses)
        loss.backward()
        model.zero_grad(set_to_none=True)

    return run


def contrastive_attribution(model: torch.nn.Module, data: dict) -> Callable:
    """The work the reference GradMix mode adds between the training
    forward and the masked forward.

    The training forward of the views, recording the attributed
    activations, runs untimed here; the returned callable runs the
    attribution loss (SimCLR on the embeddings), ``torch.autograd.grad``
    with respect to the activations (graph kept, as in training),
    ``layercam_maps`` and ``GradMix.mask`` of view 1.
    """
    views = data['inputs']
    batch_size = views[0].shape[0]
    with model.layercam.capture() as activations:
        embeds = model.extract_feat(torch.cat(views), stage='projector')
    embeds = torch.stack(embeds.chunk(len(views)), dim=1)  # (B, V, D)

    def run():
        attribution = model.attribution_loss(embeds)
        grads = torch.autograd.grad(
            attribution, activations, retain_graph=True)
        maps = layercam_maps(activations, grads, views[0].shape[-2:])
        model.gradmix.mask(views[0], maps[:batch_size])

    return run


def ce_attribution(model: torch.nn.Module, data: dict) -> Callable:
    """The standalone LayerCAM pass that GradMix runs in CE mode (its
    objective and layers) on a batch preprocessed without augments."""
    gradmix, = find_gradmix_augments(model)
    layercam = LayerCAM(model, gradmix.attribution_layers)
    targets = torch.cat([sample.gt_label for sample in data['data_samples']])

    def run():
        layercam(data['inputs'], objective=gradmix.objective, targets=targets)

    return run


def main(argv=None) -> dict:
    args = parse_args(argv)
    # Quiet the per-parameter initialisation report of ``init_weights``.
    MMLogger.get_instance('benchmark_training', log_level='WARNING')
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    generator = torch.Generator().manual_seed(args.seed)
    info = machine_info(device)
    print(f'machine: {info}')

    models, wrappers, num_classes = {}, {}, []
    for recipe in args.recipes:
        cfg = load_recipe_config(recipe, args.width,
                                 image_size_of(recipe, args.image_size))
        num_classes.append(cfg.model.data_preprocessor.num_classes)
        models[recipe] = build_model(recipe, cfg.model, device)
        wrappers[recipe] = build_optim_wrapper(models[recipe],
                                               cfg.optim_wrapper)
    # Labels valid for every model; one batch per view count and size.
    batches = {}

    def batch_of(recipe: str) -> SyntheticBatch:
        key = (2 if is_contrastive(recipe) else 1,
               image_size_of(recipe, args.image_size))
        if key not in batches:
            batches[key] = SyntheticBatch(args.batch_size, key[1],
                                          min(num_classes), key[0],
                                          generator)
        return batches[key]

    for recipe in args.recipes:  # drawn in a fixed order
        batch_of(recipe)

    def step_task(recipe: str) -> Callable[[], Callable]:

        def prepare():
            data = batch_of(recipe).data()
            return lambda: models[recipe].train_step(data, wrappers[recipe])

        return prepare

    def piece_task(recipe: str, piece: Callable,
                   training: bool = True) -> Callable[[], Callable]:

        def prepare():
            model = models[recipe]
            data = model.data_preprocessor(batch_of(recipe).data(), training)
            return piece(model, data)

        return prepare

    tasks: Dict[str, Callable[[], Callable]] = {
        f'step/{recipe}': step_task(recipe)
        for recipe in args.recipes
    }
    gradmix_recipes = [
        recipe for recipe in args.recipes
        if RECIPE_FAMILIES[recipe][0] in ('supcon_simclr_gradmix',
                                          'ce_gradmix')
    ]
    for recipe in gradmix_recipes:
        tasks[f'fwd_bwd/{BASELINES[recipe]}'] = piece_task(
            BASELINES[recipe], forward_backward)
        tasks[f'attribution/{recipe}'] = piece_task(
            recipe, contrastive_attribution) if is_contrastive(recipe) \
            else piece_task(recipe, ce_attribution, training=False)

    timings = interleaved_timings(tasks, args.repeats, args.warmup, device)
    stats = {name: summarize(seconds) for name, seconds in timings.items()}

    memory = {}
    for recipe in args.recipes:
        data = batch_of(recipe).data()
        with peak_memory(device) as measured:
            models[recipe].train_step(data, wrappers[recipe])
        memory[recipe] = measured

    steps = {}
    for recipe in args.recipes:
        step = stats[f'step/{recipe}']
        baseline = stats[f'step/{BASELINES[recipe]}']
        steps[recipe] = dict(
            baseline=BASELINES[recipe],
            ratio_to_baseline=step['median_s'] / baseline['median_s'],
            min_ratio_to_baseline=step['min_s'] / baseline['min_s'],
            peak_memory_mib=memory[recipe]['peak_mib'],
            **step)
    attribution = {}
    for recipe in gradmix_recipes:
        baseline = BASELINES[recipe]
        piece = stats[f'attribution/{recipe}']['median_s']
        fwd_bwd = stats[f'fwd_bwd/{baseline}']['median_s']
        attribution[recipe] = dict(
            attribution=stats[f'attribution/{recipe}'],
            baseline_forward_backward=stats[f'fwd_bwd/{baseline}'],
            ratio_to_forward_backward=piece / fwd_bwd,
            min_ratio_to_forward_backward=(
                stats[f'attribution/{recipe}']['min_s'] /
                stats[f'fwd_bwd/{baseline}']['min_s']),
            share_of_step=piece / steps[recipe]['median_s'])

    results = dict(
        benchmark='training',
        machine=info,
        load_average_after=list(os.getloadavg()),
        settings=dict(
            width=args.width, batch_size=args.batch_size,
            image_size=args.image_size,
            image_sizes={r: image_size_of(r, args.image_size)
                         for r in args.recipes},
            configs={r: RECIPE_CONFIGS[r]
                     for r in args.recipes},
            repeats=args.repeats, warmup=args.warmup, seed=args.seed,
            contrastive_views=2,
            memory_method=next(iter(memory.values()))['method']),
        steps=steps,
        attribution=attribution)
    print_tables(results)
    write_json(results, args.out)
    return results


def print_tables(results: dict) -> None:
    """Print the step and attribution tables in markdown."""

    def ms(seconds: float) -> str:
        return f'{1000 * seconds:.1f}'

    rows: List[Tuple] = []
    for recipe, step in results['steps'].items():
        rows.append((recipe, ms(step['median_s']), ms(step['iqr_s']),
                     ms(step['min_s']),
                     f"{step['ratio_to_baseline']:.2f}x ({step['baseline']})",
                     f"{step['min_ratio_to_baseline']:.2f}x",
                     f"{step['peak_memory_mib']:.0f}"))
    print(
        markdown_table(('recipe', 'median step (ms)', 'IQR (ms)', 'min (ms)',
                        'ratio to baseline (medians)', 'ratio (minima)',
                        'peak memory (MiB)'), rows))
    print(f"memory: {results['settings']['memory_method']}")
    rows = []
    for recipe, entry in results['attribution'].items():
        rows.append((recipe, ms(entry['attribution']['median_s']),
                     ms(entry['baseline_forward_backward']['median_s']),
                     f"{entry['ratio_to_forward_backward']:.2f} "
                     f"({entry['min_ratio_to_forward_backward']:.2f})",
                     f"{100 * entry['share_of_step']:.0f}%"))
    if rows:
        print()
        print(
            markdown_table(
                ('recipe', 'attribution (ms)',
                 'baseline fwd+bwd (ms)',
                 'attribution / fwd+bwd, medians (minima)',
                 'share of the GradMix step'), rows))


if __name__ == '__main__':
    main()
