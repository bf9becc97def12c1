"""Every bad input gets a clear error that names the problem.

Each case goes through the tools (``tools/train.py`` / ``tools/test.py``
in-process) with a config holding one mistake, and checks the message
(``match`` also searches the exception's notes).
"""
import os
import os.path as osp
import shutil

import pytest
import torch
from mmpretrain.registry import DATASETS, MODELS
from reliability_helpers import (
    ce_gradmix_model,
    contrastive_model,
    loader,
    run_tool,
    runtime,
    write_config,
)

from gradmix_plugin.utils import check_checkpoint_fits

PIPELINE = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]


def osr_folder(root, **osr):
    """OSRDataset over a CustomDataset folder, class 'a' known."""
    cfg = dict(
        type='OSRDataset',
        known_classes=[0],
        dataset=dict(
            type='CustomDataset', data_root=root, pipeline=PIPELINE))
    cfg.update(osr)
    return cfg


def config(tmp_path, png_root, name='bad', model=None, dataset=None,
           hooks=(dict(type='GradMixModelHook'), ), **cfg):
    return write_config(
        tmp_path / f'{name}.py',
        model=model or ce_gradmix_model(),
        train_dataloader=loader(dataset or osr_folder(png_root), 4),
        test_dataloader=loader(
            osr_folder(png_root, subset='open'), 4, shuffle=False),
        test_evaluator=dict(type='OSRMetric', scores=('msp', ),
                            feature='feats'),
        test_cfg=dict(),
        **runtime(1, custom_hooks=list(hooks), **cfg))


def train(config_path, tmp_path, *args):
    run_tool('train', config_path, '--work-dir', str(tmp_path / 'work'),
             *args)


def test_wrong_attribution_layer_ce(tmp_path, png_root):
    model = ce_gradmix_model(attribution_layers=['backbone.layer9'])
    with pytest.raises(ValueError,
                       match=r"unknown attribution layer\(s\) "
                       r"\['backbone.layer9'\].*backbone.layer4"):
        train(config(tmp_path, png_root, model=model), tmp_path)


def test_wrong_attribution_layer_contrastive(tmp_path, png_root):
    model = contrastive_model(
        gradmix=dict(type='GradMix', attribution_layers=['backbone.layr3']))
    with pytest.raises(ValueError, match=r"\['backbone.layr3'\]"):
        train(config(tmp_path, png_root, model=model), tmp_path)


def test_gradmix_without_layercam_hook(tmp_path, png_root):
    with pytest.raises(RuntimeError,
                       match=r"add dict\(type='GradMixModelHook'\) to "
                       '`custom_hooks`'):
        train(config(tmp_path, png_root, hooks=()), tmp_path)


@pytest.mark.parametrize('osr, match', [
    (dict(protocol='cifar11', known_classes=None),
     r"Unknown OSR protocol 'cifar11'; valid protocols are \[.*'cifar10'"),
    (dict(protocol='cifar10', split=7, known_classes=None),
     r"split index 7 for protocol 'cifar10' is outside 0..4"),
    (dict(protocol='cifar10', known_classes=None),
     r"protocol 'cifar10' refers to a dataset with 10 classes.*has 2"),
    (dict(subset='closed'), r"`subset` 'closed' is not one of"),
])
def test_osr_protocol_and_split_errors(tmp_path, png_root, osr, match):
    dataset = osr_folder(png_root, **osr)
    with pytest.raises(ValueError, match=match):
        train(config(tmp_path, png_root, dataset=dataset), tmp_path)


def test_missing_data_root(tmp_path, png_root):
    missing = str(tmp_path / 'no_such_data')
    with pytest.raises(FileNotFoundError,
                       match=f"(?s){missing}.*data_root='{missing}'"):
        train(
            config(tmp_path, png_root, dataset=osr_folder(missing)),
            tmp_path)
    with pytest.raises(FileNotFoundError, match=f"'{missing}' does not"):
        DATASETS.build(dict(type='TinyImageNet', data_root=missing))


def test_registry_typo(tmp_path, png_root):
    model = ce_gradmix_model()
    model['train_cfg']['augments']['type'] = 'GradMx'
    with pytest.raises(KeyError,
                       match='GradMx is not in the mmpretrain::batch '
                       'augment registry'):
        train(config(tmp_path, png_root, model=model), tmp_path)
    model = contrastive_model()
    model['type'] = 'ContrastiveClasifier'
    with pytest.raises(KeyError,
                       match='ContrastiveClasifier is not in the '
                       'mmpretrain::model registry'):
        train(config(tmp_path, png_root, 'typo2', model=model), tmp_path)


def save_checkpoint(path, num_classes):
    model = MODELS.build(ce_gradmix_model(num_classes=num_classes))
    torch.save(dict(meta=dict(), state_dict=model.state_dict()), path)
    return str(path)


@pytest.mark.slow
def test_checkpoint_with_other_number_of_classes(tmp_path, png_root):
    checkpoint = save_checkpoint(tmp_path / 'three_classes.pth', 3)
    with pytest.raises(ValueError,
                       match=r'head.fc.weight has shape \(3, 64\) in the '
                       r'checkpoint but \(2, 64\) in the model'):
        run_tool('test', config(tmp_path, png_root), checkpoint,
                 '--work-dir', str(tmp_path / 'work'))


def test_checkpoint_of_another_model_lists_missing_and_unexpected(tmp_path):
    checkpoint = tmp_path / 'contrastive.pth'
    contrastive = MODELS.build(contrastive_model())
    torch.save(dict(state_dict=contrastive.state_dict()), checkpoint)
    with pytest.raises(ValueError,
                       match=r'missing in the checkpoint: head.fc.weight, '
                       r'head.fc.bias; not in the model: projector'):
        check_checkpoint_fits(MODELS.build(ce_gradmix_model()),
                              str(checkpoint))


@pytest.mark.slow
@pytest.mark.parametrize('damage', ['garbage', 'truncated', 'empty'])
def test_corrupted_checkpoint(tmp_path, png_root, damage):
    path = save_checkpoint(tmp_path / 'model.pth', 2)
    content = open(path, 'rb').read()
    content = dict(garbage=b'\x00not a checkpoint' * 100,
                   truncated=content[:len(content) // 2],
                   empty=b'')[damage]
    with open(path, 'wb') as file:
        file.write(content)
    match = f'checkpoint file {path} is corrupted or not a PyTorch'
    with pytest.raises(RuntimeError, match=match):
        run_tool('test', config(tmp_path, png_root), path, '--work-dir',
                 str(tmp_path / 'work'))
    # The same for `--resume` of a run whose last checkpoint is damaged.
    work_dir = tmp_path / 'work'
    os.makedirs(work_dir, exist_ok=True)  # the refused test made nothing
    with open(work_dir / 'last_checkpoint', 'w') as file:
        file.write(path)
    with pytest.raises(RuntimeError, match=match):
        train(config(tmp_path, png_root), tmp_path, '--resume')


@pytest.mark.parametrize('content', [b'GIF89a garbage', b''])
def test_undecodable_image_is_named(tmp_path, png_root, content):
    root = str(tmp_path / 'images')
    shutil.copytree(png_root, root)
    bad = osp.join(root, 'a', '0.png')
    with open(bad, 'wb') as file:
        file.write(content)
    assert os.path.getsize(bad) == len(content)
    with pytest.raises(Exception, match=bad):
        train(
            config(
                tmp_path,
                png_root,
                dataset=osr_folder(root),
                train_cfg=dict(by_epoch=True, max_epochs=1)), tmp_path)
