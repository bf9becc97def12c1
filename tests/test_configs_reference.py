"""The reference recipes (configs/reference/): their networks are those
docs/recipes.md states, stage 2 starts from stage 1's weights with a fresh
optimiser and refuses to train without them, and the reference's linear
probe trains a bias-free layer on the frozen, normalised projection."""
import glob
import os.path as osp
import re

import pytest
import torch
from helpers import REPO
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import RUNNERS
from mmpretrain.registry import MODELS
from test_configs import make_tiny

import gradmix_plugin  # noqa: F401  (registers the plugin)
from gradmix_plugin.engine.hooks.require_load_from_hook import (
    MissingInitCheckpointError,
    StageResumeError,
)
from gradmix_plugin.utils import load_from_local_safely, prepare_config

DOCS = osp.join(REPO, 'docs', 'recipes.md')
REFERENCE = osp.join(REPO, 'configs', 'reference')
TABLE_TITLE = '### The networks of the recipes'
STAGE1 = osp.join(REFERENCE, 'ref_digits_stage1_simclr_gradmix_resnet18.py')
STAGE2 = osp.join(REFERENCE,
                  'ref_digits_stage2_supcon_simclr_gradmix_resnet18.py')
PROBE = osp.join(REFERENCE, 'ref_linear_probe_projection_cifar10.py')


def docs_table():
    """``{config path: (zero_init_residual, attribution layers)}`` from the
    table under ``TABLE_TITLE`` in docs/recipes.md."""
    with open(DOCS) as f:
        text = f.read()
    start = text.index(TABLE_TITLE)
    rows = {}
    for line in text[start:].splitlines()[1:]:
        if rows and not line.startswith('|'):
            break
        cells = [cell.strip() for cell in line.strip('|').split('|')]
        match = re.fullmatch(r'`(configs/[\w/]+\.py)`', cells[0])
        if len(cells) < 3 or not match:
            continue
        zero_init = {'`True`': True, '`False`': False}[cells[1]]
        layers = None if cells[2] == 'none' else tuple(
            re.fullmatch(r'`([\w.]+)`', name.strip()).group(1)
            for name in cells[2].split(','))
        rows[match.group(1)] = (zero_init, layers)
    return rows


DOCUMENTED = docs_table()


def test_docs_table_lists_every_reference_contrastive_config():
    listed = {path for path in DOCUMENTED if path.startswith('configs/ref')}
    found = {
        osp.relpath(path, REPO)
        for path in glob.glob(osp.join(REFERENCE, '*.py'))
        if Config.fromfile(path).model.type == 'ContrastiveClassifier'
    }
    assert found == listed


@pytest.mark.parametrize('path', sorted(DOCUMENTED), ids=osp.basename)
def test_network_matches_docs_table(path):
    zero_init, layers = DOCUMENTED[path]
    cfg = prepare_config(Config.fromfile(osp.join(REPO, path)), path)
    model = MODELS.build(
        dict(cfg.model, data_preprocessor=cfg.get('data_preprocessor')))
    model.init_weights()
    assert model.backbone.zero_init_residual is zero_init
    # What it does: the last BatchNorm of every residual branch starts at
    # 0 (mmpretrain's default) or at 1 (the reference's resnet_big.py).
    last_norms = [
        block.norm2.weight for name in model.backbone.res_layers
        for block in getattr(model.backbone, name)
    ]
    expected = 0.0 if zero_init else 1.0
    for weight in last_norms:
        torch.testing.assert_close(weight, torch.full_like(weight, expected))
    if layers is None:
        assert model.gradmix is None
    else:
        assert model.gradmix.attribution_layers == layers
        for name in layers:
            model.get_submodule(name)  # names a module of the network


def tiny_runner(path, work_dir, **options):
    cfg = make_tiny(Config.fromfile(path), work_dir)
    cfg.merge_from_dict(options)
    return RUNNERS.build(prepare_config(cfg, path))  # OSRRunner


class _AtTrainStart(Hook):
    """Records the model, optimiser state and iteration at the start of
    training (after the checkpoint is loaded)."""

    def before_train(self, runner):
        self.weights = {
            key: value.detach().clone()
            for key, value in runner.model.state_dict().items()
        }
        self.optimizer_state = dict(runner.optim_wrapper.optimizer.state)
        self.iter = runner.iter


def test_stage2_refuses_to_train_without_load_from(tmp_path):
    runner = tiny_runner(STAGE2, tmp_path)
    with pytest.raises(MissingInitCheckpointError,
                       match='load_from is None: give it with '
                       '--cfg-options load_from=PATH'):
        runner.train()


@pytest.mark.slow
def test_stage2_starts_from_stage1_weights_with_a_fresh_optimizer(tmp_path):
    stage1 = tiny_runner(STAGE1, tmp_path / 'stage1')
    stage1.train()
    checkpoint = str(tmp_path / 'stage1' / 'iter_2.pth')
    saved = load_from_local_safely(checkpoint, map_location='cpu')
    assert saved['optimizer']['state']  # stage 1's Adam moments exist

    stage2 = tiny_runner(STAGE2, tmp_path / 'stage2', load_from=checkpoint)
    start = _AtTrainStart()
    stage2.register_hook(start, priority='LOWEST')
    stage2.train()
    assert start.iter == 0
    assert start.optimizer_state == {}
    for key, value in saved['state_dict'].items():
        torch.testing.assert_close(start.weights[key], value, msg=key)
    assert stage2.model.gamma == 1.0 and stage1.model.gamma == 0.0

    # --resume with load_from would make mmengine resume stage 1's state.
    again = tiny_runner(STAGE2, tmp_path / 'stage2', load_from=checkpoint,
                        resume=True)
    with pytest.raises(StageResumeError,
                       match='outside its work dir .*Continue this stage '
                       'with --resume alone; start it with load_from alone'):
        again.train()


@pytest.mark.slow
def test_reference_linear_probe_trains_a_bias_free_layer_on_the_projection(
        tmp_path):
    ssl = tiny_runner(STAGE1, tmp_path / 'ssl')
    ssl.train()
    checkpoint = str(tmp_path / 'ssl' / 'iter_2.pth')
    contrastive = {
        key: value.detach().clone()
        for key, value in ssl.model.state_dict().items()
    }

    cfg = make_tiny(Config.fromfile(PROBE), tmp_path / 'probe')
    width = cfg.model.head.in_channels  # make_tiny's backbone width
    projector = cfg.model.neck.necks[1]
    projector.update(
        in_channels=width,
        hid_channels=64,
        out_channels=64,
        init_cfg=dict(
            type='Pretrained', checkpoint=checkpoint, prefix='projector.'))
    cfg.model.backbone.init_cfg = dict(
        type='Pretrained', checkpoint=checkpoint, prefix='backbone.')
    cfg.model.head.in_channels = 64
    # The digits replaced the CIFAR-10 folders: a config without a file,
    # so that the config rules do not tie data roots read from the file.
    cfg = Config(cfg.to_dict())
    probe = RUNNERS.build(prepare_config(cfg, PROBE))
    probe.train()

    model = probe.model
    assert model.head.fc.bias is None
    for key, value in model.backbone.state_dict().items():
        torch.testing.assert_close(
            value, contrastive[f'backbone.{key}'], msg=key)
    for key, value in model.neck.necks[1].state_dict().items():
        torch.testing.assert_close(
            value, contrastive[f'projector.{key}'], msg=key)
    feats = model.extract_feat(torch.randn(3, 3, 32, 32))[-1]
    torch.testing.assert_close(feats.norm(dim=1), torch.ones(3))
