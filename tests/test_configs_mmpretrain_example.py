"""The README's integration path: mmpretrain's own bases plus the plugin
(``configs/examples/mmpretrain_project_ce_gradmix.py``) trains with
normalised inputs on a folder tree given by one ``data_root`` option."""
import json
import os
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from helpers import REPO, mmpretrain_tool, run_tool
from mmengine.config import Config
from mmengine.runner import Runner
from PIL import Image

import gradmix_plugin  # noqa: F401  (registers the plugin)
from gradmix_plugin.utils import prepare_config

EXAMPLE = osp.join(REPO, 'configs', 'examples',
                   'mmpretrain_project_ce_gradmix.py')
CIFAR10_CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog',
                   'frog', 'horse', 'ship', 'truck')


@pytest.fixture(scope='module')
def cifar_like_root(tmp_path_factory) -> str:
    """{train,test}/<CIFAR-10 class>/ with 4 random 32x32 PNGs each."""
    root = tmp_path_factory.mktemp('cifar_like')
    rng = np.random.default_rng(0)
    for prefix in ('train', 'test'):
        for name in CIFAR10_CLASSES:
            os.makedirs(root / prefix / name)
            for i in range(4):
                image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(image).save(root / prefix / name / f'{i}.png')
    return str(root)


@pytest.mark.slow
def test_example_trains_normalised_on_the_given_data_root(
        cifar_like_root, tmp_path):
    cfg = prepare_config(
        Config.fromfile(EXAMPLE),
        EXAMPLE,
        work_dir=str(tmp_path),
        cfg_options={
            'data_root': cifar_like_root,
            'osr_split': 1,
            'train_cfg.max_epochs': 1,
            'model.backbone.stem_channels': 8,
            'model.backbone.base_channels': 8,
            'model.head.in_channels': 64,
            'train_dataloader.num_workers': 0,
            'val_dataloader.num_workers': 0,
            'test_dataloader.num_workers': 0,
            'custom_hooks.1.dataloader.num_workers': 0,
            'val_evaluator.knn_k': 5,
            'default_hooks.logger.interval': 1,
        })
    runner = Runner.from_cfg(cfg)
    preprocessor = runner.model.data_preprocessor
    batches = []
    preprocessor.register_forward_hook(
        lambda module, args, output: batches.append(output['inputs']))
    runner.train()

    # 24 known training images (split 1: 6 classes x 4) in batches of 16,
    # then the validation of the open test set.
    assert runner.iter == 2
    train_inputs = batches[0]
    assert train_inputs.shape == (16, 3, 32, 32)
    # Raw 0-255 pixels would have a mean near 127: these are normalised
    # with the base's CIFAR-10 mean / std, BGR files turned to RGB.
    assert abs(float(train_inputs.mean())) < 0.5
    assert 1.0 < float(train_inputs.std()) < 2.0
    assert preprocessor.to_rgb
    assert runner.train_dataloader.dataset.metainfo['split'] == 1
    assert runner.train_dataloader.dataset.dataset.data_root == \
        cifar_like_root
    assert 'val/osr/class_knn/auroc' in runner.message_hub.log_scalars


def test_readme_shows_the_example_as_it_is():
    with open(osp.join(REPO, 'README.md')) as file:
        readme = file.read()
    section = readme[readme.index(
        '## Use it from an existing mmpretrain project'):]
    snippet = section[section.index('```python\n') + 10:]
    snippet = snippet[:snippet.index('```')]
    with open(EXAMPLE) as file:
        example = file.read()
    assert snippet == example[example.index('_base_ = ['):]


@pytest.mark.slow
def test_mmpretrain_tools_train_and_test_the_example(cifar_like_root,
                                                     tmp_path):
    # What the README shows: mmpretrain's installed tools/train.py and
    # tools/test.py (what `mim train / test mmpretrain` run) on the example,
    # with the data root and split given as options.
    work_dir = str(tmp_path / 'mim')
    options = [
        f'data_root={cifar_like_root}', 'osr_split=1',
        'train_cfg.max_epochs=1', 'model.backbone.stem_channels=8',
        'model.backbone.base_channels=8', 'model.head.in_channels=64',
        'train_dataloader.num_workers=0', 'val_dataloader.num_workers=0',
        'test_dataloader.num_workers=0',
        'custom_hooks.1.dataloader.num_workers=0', 'val_evaluator.knn_k=5',
        'test_evaluator.knn_k=5'
    ]
    run_tool([
        sys.executable,
        mmpretrain_tool('train'), EXAMPLE, '--work-dir', work_dir,
        '--cfg-options', *options
    ])
    checkpoint = osp.join(work_dir, 'epoch_1.pth')
    provenance = torch.load(
        checkpoint, weights_only=False)['meta']['provenance']
    assert provenance['split'] == 1
    assert provenance['data_root'] == cifar_like_root
    run_tool([
        sys.executable,
        mmpretrain_tool('test'), EXAMPLE, checkpoint, '--work-dir', work_dir,
        '--cfg-options', *options
    ])
    with open(osp.join(work_dir, 'osr_metrics.json')) as file:
        report = json.load(file)
    assert report['provenance']['split'] == 1
    assert report['provenance']['checkpoint'] == checkpoint
