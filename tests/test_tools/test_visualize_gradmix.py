"""tools/visualize_gradmix.py follows the tools' config rules and
attributes as training does."""
import os.path as osp

import torch
from helpers import load_tool
from mmengine.config import Config
from mmpretrain.registry import MODELS

import gradmix_plugin  # noqa: F401  (registers the plugin)
from gradmix_plugin.attribution import LayerCAM, layercam_maps

CONFIG = """
custom_imports = dict(imports=['gradmix_plugin'], allow_failed_imports=False)
default_scope = 'mmpretrain'
osr_split = 0
model = dict(
    type='ContrastiveClassifier',
    backbone=dict(type='ResNet_CIFAR', depth=18, stem_channels=8,
                  base_channels=8),
    neck=dict(type='GlobalAveragePooling'),
    projector=dict(type='ProjectionNeck', in_channels=64, hid_channels=32,
                   out_channels=16),
    gradmix=dict(type='GradMix',
                 attribution_layers=['backbone.layer3', 'backbone.layer4']),
    data_preprocessor=dict(type='OSRDataPreprocessor', mean=[127.5] * 3,
                           std=[64.0] * 3))
train_dataloader = dict(
    batch_size=2, num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(type='OSRDataset', protocol='digits', split=osr_split,
                 dataset=dict(type='DigitsDataset', split='train',
                              indices=40, pipeline=[
                                  dict(type='MultiView', num_views=2,
                                       transforms=[[]]),
                                  dict(type='PackInputs')])))
"""


def test_osr_split_reaches_the_visualised_loader(tmp_path, monkeypatch):
    config = tmp_path / 'config.py'
    config.write_text(CONFIG)
    tool = load_tool('visualize_gradmix')
    splits = []
    build = tool.Runner.build_dataloader

    def recording_build(loader_cfg, seed=None):
        splits.append(loader_cfg['dataset']['split'])
        return build(loader_cfg, seed=seed)

    monkeypatch.setattr(tool.Runner, 'build_dataloader', recording_build)
    tool.main([
        str(config), '--out',
        str(tmp_path / 'grid.png'), '--num-images', '2', '--cfg-options',
        'osr_split=3'
    ])
    assert splits == [3]
    assert osp.exists(tmp_path / 'grid.png')


def test_contrastive_maps_use_train_mode_batchnorm_and_keep_buffers():
    model = MODELS.build(Config.fromstring(CONFIG, '.py').model)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
    model.eval()
    torch.manual_seed(0)
    views = [torch.randn(3, 3, 32, 32), torch.randn(3, 3, 32, 32)]
    buffers = {k: b.clone() for k, b in model.named_buffers()}

    _, summed = load_tool('visualize_gradmix').contrastive_maps(
        model, model.gradmix, views)

    # Buffers restored, eval mode back.
    assert not model.training
    for name, buffer in model.named_buffers():
        assert torch.equal(buffer, buffers[name]), name
    # The maps of training: a train-mode forward of both views.
    model.train()
    cam = LayerCAM(model, model.gradmix.attribution_layers)
    with cam.capture() as activations:
        embeds = model(torch.cat(views), mode='tensor')
    embeds = embeds.view(2, 3, -1).transpose(0, 1)
    grads = torch.autograd.grad(model.attribution_loss(embeds), activations)
    expected = layercam_maps(activations, grads, (32, 32))[:3]
    torch.testing.assert_close(summed, expected)
    model.eval()
    cam = LayerCAM(model, model.gradmix.attribution_layers)
    with cam.capture() as activations:
        embeds = model(torch.cat(views), mode='tensor')
    embeds = embeds.view(2, 3, -1).transpose(0, 1)
    grads = torch.autograd.grad(model.attribution_loss(embeds), activations)
    eval_maps = layercam_maps(activations, grads, (32, 32))[:3]
    assert not torch.allclose(summed, eval_maps, atol=1e-3)


def test_out_folder_is_created_and_checkpoint_loads(tmp_path):
    """``--out dir/x.png`` with a missing ``dir`` used to fail at the end;
    a checkpoint of the model loads through the safe loader."""
    config = tmp_path / 'config.py'
    config.write_text(CONFIG)
    cfg = Config.fromfile(str(config))
    model = MODELS.build(cfg.model)
    checkpoint = tmp_path / 'model.pth'
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), checkpoint)
    out = tmp_path / 'new' / 'deeper' / 'grid.png'
    load_tool('visualize_gradmix').main([
        str(config), str(checkpoint), '--out', str(out), '--num-images', '2'
    ])
    assert out.is_file()
