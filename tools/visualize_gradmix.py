"""Show what GradMix masks on one training batch.

Writes a PNG grid with one row per image: the input, the LayerCAM map of
every attribution layer, their sum, the GradMix box on the input and the
augmented image.

Example::

    python tools/visualize_gradmix.py CONFIG [CHECKPOINT] \\
        --out gradmix.png --num-images 8
"""
import argparse
import copy
import os
import os.path as osp
from contextlib import contextmanager
from typing import Iterator, List, Optional, Sequence, Tuple

import torch
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmengine.runner import Runner, load_checkpoint
from mmengine.utils import import_modules_from_strings
from mmpretrain.registry import MODELS
from torch import Tensor, nn

import gradmix_plugin  # noqa: F401  (registers the components)
from gradmix_plugin.attribution import (
    LayerCAM,
    layercam_maps,
    parse_attribution_layers,
)
from gradmix_plugin.engine.hooks.gradmix_model_hook import (
    find_gradmix_augments,
)
from gradmix_plugin.models.batch_augments import GradMix
from gradmix_plugin.utils import merge_options, safe_checkpoint_loading


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Visualise LayerCAM maps and GradMix boxes of a batch')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        'checkpoint', nargs='?', default=None,
        help='checkpoint file (random weights when omitted)')
    parser.add_argument(
        '--out', default='gradmix.png', help='the PNG file to write')
    parser.add_argument(
        '--num-images', type=int, default=8, help='number of images (rows)')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    parser.add_argument(
        '--device', default='cpu', help='device, e.g. cpu or cuda:0')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction,
        help='override settings of the config, xxx=yyy format')
    return parser.parse_args(argv)


def find_gradmix(model: nn.Module) -> Tuple[GradMix, bool]:
    """The GradMix of a model and whether it is the contrastive one.

    Args:
        model (nn.Module): The built model.

    Returns:
        Tuple[GradMix, bool]: The first GradMix of the data preprocessor's
        batch augments (CE mode), else the ``gradmix`` of a contrastive
        classifier (built from ``model.gradmix`` of the config), and True
        for the latter.
    """
    gradmix_augments = find_gradmix_augments(model)
    if gradmix_augments:
        return gradmix_augments[0], False
    if isinstance(getattr(model, 'gradmix', None), GradMix):
        return model.gradmix, True
    raise ValueError(
        f'{type(model).__name__} has no GradMix: neither in '
        'model.data_preprocessor.batch_augments (or model.train_cfg) nor '
        'as model.gradmix')


def classifier_maps(model: nn.Module, gradmix: GradMix, inputs: Tensor,
                    targets: Tensor) -> Tuple[List[Tensor], Tensor]:
    """Per-layer and summed maps with the GradMix objective (CE mode)."""
    per_layer = [
        LayerCAM(model, [layer])(inputs, gradmix.objective, targets)
        for layer in gradmix.attribution_layers
    ]
    summed = LayerCAM(model, gradmix.attribution_layers)(
        inputs, gradmix.objective, targets)
    return per_layer, summed


def contrastive_maps(model: nn.Module, gradmix: GradMix,
                     views: Sequence[Tensor]) -> Tuple[List[Tensor], Tensor]:
    """Per-layer and summed view-1 maps with the model's SimCLR objective.

    As in training: the views are forwarded together in train mode
    (BatchNorm with the batch statistics; the running statistics are
    restored afterwards), ``model(inputs, mode='tensor')`` gives the
    ``(V * B, D)`` embeddings and the model's ``attribution_loss`` (SimCLR)
    is attributed; the maps are normalised over all views.
    """
    batch_size, num_views = views[0].shape[0], len(views)
    cam = LayerCAM(model, gradmix.attribution_layers)
    with torch.enable_grad(), train_mode(model), \
            cam.capture() as activations:
        embeds = model(torch.cat(list(views)), mode='tensor')
        embeds = embeds.view(num_views, batch_size, -1).transpose(0, 1)
        grads = torch.autograd.grad(
            model.attribution_loss(embeds), activations)
    size = tuple(views[0].shape[-2:])
    per_layer = [
        layercam_maps([act], [grad], size)[:batch_size]
        for act, grad in zip(activations, grads)
    ]
    summed = layercam_maps(activations, grads, size)[:batch_size]
    return per_layer, summed


@contextmanager
def train_mode(model: nn.Module) -> Iterator[None]:
    """Train mode inside, with every buffer (BatchNorm running statistics,
    ``num_batches_tracked``) restored on exit and eval mode back."""
    saved = {name: b.clone() for name, b in model.named_buffers()}
    model.train()
    try:
        yield
    finally:
        model.eval()
        with torch.no_grad():
            for name, buffer in model.named_buffers():
                buffer.copy_(saved[name])


def to_display(images: Tensor, preprocessor: nn.Module) -> Tensor:
    """Undo the preprocessor's normalisation: ``(B, H, W, C)`` in [0, 1]."""
    if getattr(preprocessor, '_enable_normalize', False):
        images = images * preprocessor.std + preprocessor.mean
    images = images.detach().float().cpu() / 255.0
    return images.clamp(0, 1).permute(0, 2, 3, 1)


def plot_grid(out: str, images: Tensor, layer_names: Sequence[str],
              per_layer: Sequence[Tensor], summed: Tensor, boxes: Tensor,
              augmented: Tensor, lambda_eff: float) -> None:
    """Write the PNG grid."""
    titles = ['input', *layer_names, 'sum of maps', 'box', 'GradMix']
    rows, cols = images.shape[0], len(titles)
    # Maps keep their batch-wide scale: [0, 1] per layer, [0, L] summed.
    map_ranges = [1.0] * len(layer_names) + [float(len(layer_names))]
    fig = Figure(figsize=(2 * cols, 2 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    gray = images.shape[-1] == 1
    for row in range(rows):
        panels = [images[row], *(m[row] for m in per_layer), summed[row],
                  images[row], augmented[row]]
        for col, panel in enumerate(panels):
            axis = axes[row, col]
            if 0 < col < cols - 2:
                axis.imshow(
                    panel, cmap='jet', vmin=0, vmax=map_ranges[col - 1])
            elif gray:
                axis.imshow(panel.squeeze(-1), cmap='gray', vmin=0, vmax=1)
            else:
                axis.imshow(panel)
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(titles[col], fontsize=8)
        y1, x1, y2, x2 = boxes[row].tolist()
        axes[row, cols - 2].add_patch(
            Rectangle((x1 - 0.5, y1 - 0.5), x2 - x1, y2 - y1, fill=False,
                      edgecolor='red', linewidth=1.5))
    fig.suptitle(f'lambda_eff = {lambda_eff:.3f}', fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=100)


def build_model(cfg: Config) -> nn.Module:
    """Build ``cfg.model`` with the config's top-level
    ``data_preprocessor``, as mmengine's ``Runner`` does."""
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    return MODELS.build(model_cfg)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    # The tools' rules: osr_split / data_root everywhere, normalisation
    # from the top-level data_preprocessor.
    cfg = merge_options(Config.fromfile(args.config), args.cfg_options)
    if cfg.get('custom_imports'):
        import_modules_from_strings(**cfg.custom_imports)
    init_default_scope(cfg.get('default_scope', 'mmpretrain'))
    torch.manual_seed(args.seed)

    # The folder of --out first, so that a long run does not fail at the end.
    os.makedirs(osp.dirname(osp.abspath(args.out)), exist_ok=True)
    model = build_model(cfg)
    if args.checkpoint is not None:
        with safe_checkpoint_loading():
            load_checkpoint(model, args.checkpoint, map_location='cpu')
    model.to(args.device).eval()
    gradmix, contrastive = find_gradmix(model)

    loader_cfg = copy.deepcopy(cfg.train_dataloader)
    loader_cfg.update(
        batch_size=args.num_images, num_workers=0, persistent_workers=False)
    dataloader = Runner.build_dataloader(loader_cfg, seed=args.seed)
    data = model.data_preprocessor(next(iter(dataloader)), training=False)
    inputs = data['inputs']
    if contrastive:
        per_layer, summed = contrastive_maps(model, gradmix, inputs)
        inputs = inputs[0]
    else:
        if not isinstance(inputs, Tensor):
            inputs = inputs[0]  # multi-view data: the first view
        targets = torch.cat([s.gt_label for s in data['data_samples']])
        per_layer, summed = classifier_maps(model, gradmix, inputs, targets)
    augmented, lambda_eff, boxes = gradmix.mask(inputs, summed)

    preprocessor = model.data_preprocessor
    layer_names = [
        layer.name for layer in parse_attribution_layers(
            gradmix.attribution_layers)
    ]
    plot_grid(args.out, to_display(inputs, preprocessor), layer_names,
              [m.cpu() for m in per_layer],
              summed.cpu(), boxes.cpu(), to_display(augmented, preprocessor),
              lambda_eff)
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
