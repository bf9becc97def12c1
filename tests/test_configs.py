"""Every config builds and trains; the digits demo learns open-set
recognition."""
import glob
import json
import os.path as osp

import pytest
import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import RUNNERS
from mmengine.runner import Runner
from mmpretrain.registry import MODELS

import gradmix_plugin  # noqa: F401  (registers the plugin)
from gradmix_plugin.utils import prepare_config

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIGS = sorted(glob.glob(osp.join(REPO, 'configs', '*.py')))
CONFIG_NAMES = [osp.basename(path)[:-3] for path in CONFIGS]
DEMO = osp.join(REPO, 'configs', 'gradmix_resnet18_digits.py')
# Datasets of the recipes that need files on disk; the tests use the
# embedded digits in their place.
FILE_DATASETS = ('CustomDataset', 'TinyImageNet', 'DigitsDataset', 'CUB2011',
                 'Aircraft', 'Cars')


def walk(node):
    """Every dict inside a config node, depth first."""
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from walk(value)


def osr_datasets(cfg):
    return [d for d in walk(cfg._cfg_dict) if d.get('type') == 'OSRDataset']


def digits_instead(dataset, num_samples):
    """The digits split matching a file dataset config, ``num_samples`` of
    it, with the same pipeline minus file loading."""
    split = dataset.get('data_prefix', dataset.get('split', 'train'))
    return dict(
        type='DigitsDataset',
        split='train' if split == 'train' else 'test',
        indices=num_samples,
        pipeline=shrink_images([
            step for step in dataset.pipeline
            if step.type != 'LoadImageFromFile'
        ]))


def shrink_images(pipeline, size=32):
    """Crop and resize sizes above ``size`` set to it (e.g. the 448 of the
    SSB configs), so every config runs at the digits' 32x32. Float ranges
    (torchvision's ``RandomResizedCrop(scale=(0.2, 1.0))``) are kept."""
    for step in walk(pipeline):
        for key in ('size', 'scale', 'crop_size'):
            value = step.get(key)
            values = value if isinstance(value, (list, tuple)) else [value]
            if all(isinstance(v, int) and v > size for v in values):
                step[key] = size
    return pipeline


def tiny_dataset(dataset):
    """The digits in place of a dataset config (OSR protocol 'digits' for
    an ``OSRDataset``; for an ``OODDataset``, its ID set likewise and every
    OOD source the unknown training digits, disjoint from the ID images)."""
    if dataset.type == 'OODDataset':
        pipeline = dataset.pop('pipeline', None)
        if pipeline:  # the ID set's, given to the wrapper
            dataset.id_dataset.pipeline = pipeline
        dataset.id_dataset = tiny_dataset(dataset.id_dataset)
        for source in dataset.ood_datasets:
            inner = source.dataset.get('dataset', source.dataset)
            pipeline = source.dataset.get('pipeline') or inner.pipeline
            source.dataset = tiny_dataset(
                ConfigDict(type='OSRDataset', subset='unknown',
                           dataset=dict(inner, data_prefix='train',
                                        pipeline=pipeline)))
        return dataset
    if dataset.type == 'OSRDataset':
        dataset.update(protocol='digits', split=0)
        dataset.pop('unknown_dataset', None)
        pipeline = dataset.pop('pipeline', None)
        if pipeline:  # given to the wrapper
            dataset.dataset.pipeline = pipeline
        dataset.dataset = digits_instead(dataset.dataset, 120)
        return dataset
    return digits_instead(dataset, 120)


def narrow_backbone(backbone) -> int:
    """Narrow a backbone config, its depth kept (the attribution layers
    named by the config stay valid); returns its output width."""
    if backbone.type == 'VisionTransformer':
        backbone.arch.update(embed_dims=64, feedforward_channels=128)
        return 64
    if backbone.type == 'ConvNeXt':
        backbone.arch.update(channels=[8, 16, 32, 64])
        return 64
    backbone.update(stem_channels=8, base_channels=8)
    return MODELS.build(backbone).feat_dim  # ResNet-50: 4 x 64


def make_tiny(cfg, work_dir):
    """Digits data, a narrow network, 2 iterations, then one validation."""
    loaders = [
        node for node in walk(cfg._cfg_dict)
        if 'dataset' in node and 'batch_size' in node
    ]
    for loader in loaders:
        loader.update(
            batch_size=4 if loader.sampler.shuffle else 32,
            num_workers=0,
            persistent_workers=False)
        loader.dataset = tiny_dataset(loader.dataset)
    if 'osr_split' in cfg:
        cfg.osr_split = 0  # the digits splits are numbered
    model = cfg.model
    width = narrow_backbone(model.backbone)
    if 'projector' in model:
        model.projector.update(in_channels=width, hid_channels=64)
    if model.get('head'):
        model.head.in_channels = width
    if model.backbone.get('init_cfg'):
        model.backbone.init_cfg = None
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=2,
                         val_interval=2)
    cfg.param_scheduler = dict(type='ConstantLR', factor=1.0, by_epoch=False)
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', by_epoch=False, interval=2)
    cfg.work_dir = str(work_dir)
    return cfg


@pytest.mark.parametrize('path', CONFIGS, ids=CONFIG_NAMES)
def test_config_builds(path):
    cfg = Config.fromfile(path)
    assert cfg.custom_imports.imports == ['gradmix_plugin']
    assert cfg.default_scope == 'mmpretrain'
    model = MODELS.build(cfg.model)
    assert isinstance(model, torch.nn.Module)
    datasets = osr_datasets(cfg)
    if datasets:
        assert {d.split for d in datasets} == {cfg.osr_split}


@pytest.mark.slow
@pytest.mark.parametrize('path', CONFIGS, ids=CONFIG_NAMES)
def test_config_trains_two_iterations(path, tmp_path):
    cfg = make_tiny(Config.fromfile(path), tmp_path)
    runner = Runner.from_cfg(prepare_config(cfg, path))
    runner.train()
    assert runner.iter == 2
    hub = runner.message_hub
    assert torch.isfinite(torch.tensor(hub.get_scalar('train/loss').current()))
    if cfg.get('val_cfg') is not None:
        metric = 'val/osr/class_knn/auroc' if cfg.val_evaluator.type == \
            'OSRMetric' else 'val/accuracy/top1'
        assert metric in hub.log_scalars


@pytest.mark.parametrize(
    'path', [p for p in CONFIGS if 'ood' in osp.basename(p)],
    ids=[n for n in CONFIG_NAMES if 'ood' in n])
def test_ood_configs_test_every_source(path, tmp_path):
    """The test loop of the OOD benchmark configs (as tools/test.py runs
    it) reports every OOD source."""
    cfg = make_tiny(Config.fromfile(path), tmp_path)
    runner = RUNNERS.build(prepare_config(cfg, path))  # OSRRunner
    metrics = runner.test()
    sources = [s.name for s in cfg.test_dataloader.dataset.ood_datasets]
    for source in sources:
        assert f'osr/ood={source}/mahalanobis/auroc' in metrics
    assert 'osr/mls/openood_fpr95' in metrics
    # osr_metrics.json names every OOD source the numbers come from.
    with open(osp.join(runner.work_dir, 'osr_metrics.json')) as file:
        evaluation = json.load(file)['provenance']['evaluation']
    recorded = evaluation['test_set']['ood_sources']
    assert [s['name'] for s in recorded] == sources
    assert all(s['size'] > 0 and s['type'] for s in recorded)
    assert evaluation['bank_size'] > 0


def test_one_option_selects_the_split_everywhere():
    """``--cfg-options osr_split=3`` reaches the train, val, test and bank
    datasets."""
    path = osp.join(REPO, 'configs', 'gradmix_resnet18_tiny.py')
    cfg = Config.fromfile(path)
    cfg.merge_from_dict({'osr_split': 3})
    cfg = prepare_config(cfg, path)
    bank_hook, = (hook for hook in cfg.custom_hooks
                  if hook.type == 'OSRBankHook')
    datasets = dict(
        train=cfg.train_dataloader.dataset,
        val=cfg.val_dataloader.dataset,
        test=cfg.test_dataloader.dataset,
        bank=bank_hook.dataloader.dataset)
    assert {name: dataset.split for name, dataset in datasets.items()} == \
        dict(train=3, val=3, test=3, bank=3)
    assert all(dataset.split == 3 for dataset in osr_datasets(cfg))


@pytest.mark.slow
def test_linear_probe_loads_the_self_supervised_backbone(tmp_path):
    """The self-supervised checkpoint initialises the frozen backbone of the
    linear probe, which then stays unchanged while the head learns."""
    ssl_path = osp.join(REPO, 'configs', 'simclr_gradmix_resnet18_cifar10.py')
    ssl_cfg = make_tiny(Config.fromfile(ssl_path), tmp_path / 'ssl')
    # The configs' runner (OSRRunner), which loads the plugin's checkpoints
    # safely under torch >= 2.6 (a plain Runner refuses HistoryBuffer).
    ssl_runner = RUNNERS.build(prepare_config(ssl_cfg, ssl_path))
    ssl_runner.train()
    pretrained = {
        key: value.clone()
        for key, value in ssl_runner.model.backbone.state_dict().items()
    }

    probe_path = osp.join(REPO, 'configs', 'linear_probe_resnet18_cifar10.py')
    probe_cfg = make_tiny(Config.fromfile(probe_path), tmp_path / 'probe')
    probe_cfg.model.backbone.init_cfg = dict(
        type='Pretrained',
        checkpoint=str(tmp_path / 'ssl' / 'iter_2.pth'),
        prefix='backbone.')
    probe_runner = RUNNERS.build(prepare_config(probe_cfg, probe_path))
    head_before = probe_runner.model.head.fc.weight.detach().clone()
    probe_runner.train()
    backbone = probe_runner.model.backbone.state_dict()
    for key, value in pretrained.items():
        torch.testing.assert_close(backbone[key], value, msg=key)
    assert not torch.equal(probe_runner.model.head.fc.weight, head_before)


@pytest.mark.slow
def test_digits_demo_learns_open_set_recognition(tmp_path):
    """A shortened demo run is clearly better than chance (AUROC 50)."""
    cfg = Config.fromfile(DEMO)
    cfg.train_cfg.max_epochs = cfg.train_cfg.val_interval = 5
    cfg.param_scheduler.update(end=5, T_max=5)
    cfg.work_dir = str(tmp_path)
    runner = Runner.from_cfg(prepare_config(cfg, DEMO))
    runner.train()
    scores = {
        score: runner.message_hub.get_scalar(
            f'val/osr/{score}/auroc').current()
        for score in ('class_knn', 'knn')
    }
    assert scores['class_knn'] > 65 and scores['knn'] > 70, scores
