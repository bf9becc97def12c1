"""A value given once takes effect everywhere, or is refused by name."""
import copy
import functools
import glob
import os.path as osp

import pytest
import torch
from helpers import REPO, logged_messages
from mmengine.config import Config
from mmpretrain.registry import MODELS

import gradmix_plugin  # noqa: F401  (registers the plugin)
from gradmix_plugin.utils import (
    ConfigConflictError,
    check_osr_evaluator,
    iter_dicts,
    merge_options,
)
from gradmix_plugin.utils.config_rules import apply_config_rules

CE_CIFAR = osp.join(REPO, 'configs', 'ce_resnet18_cifar10.py')
EXAMPLE = osp.join(REPO, 'configs', 'examples',
                   'mmpretrain_project_ce_gradmix.py')


@functools.cache
def _parsed(path):
    return Config.fromfile(path)


def load(path):
    """A fresh copy of a parsed config (parsing mmpretrain:: bases is
    slow)."""
    return copy.deepcopy(_parsed(path))


def data_roots(cfg):
    return [d['data_root'] for d in iter_dicts(cfg) if 'data_root' in d]


def osr_splits(cfg):
    return [d['split'] for d in iter_dicts(cfg) if d.get('type') ==
            'OSRDataset']


@pytest.mark.parametrize('config', [CE_CIFAR, EXAMPLE])
def test_data_root_option_reaches_every_dataset(config):
    cfg = merge_options(load(config), {'data_root': '/my/data'})
    roots = data_roots(cfg)
    # train, val, test and the bank loader of custom_hooks
    assert len(roots) >= 4
    assert set(roots) == {'/my/data'}
    bank = next(h for h in cfg.custom_hooks if h.type == 'OSRBankHook')
    assert bank.dataloader.dataset.dataset.data_root == '/my/data'


def test_data_root_of_a_child_config_reaches_every_dataset(tmp_path):
    child = tmp_path / 'child.py'
    child.write_text(f'_base_ = [{CE_CIFAR!r}]\ndata_root = "/child/root"\n')
    cfg = merge_options(Config.fromfile(str(child)))
    assert set(data_roots(cfg)) == {'/child/root'}


def test_other_roots_are_kept():
    """The CIFAR-100 half of CIFAR+10 has its own root."""
    cfg = merge_options(
        load(osp.join(REPO, 'configs', 'gradmix_resnet18_cifar_plus10.py')),
        {'data_root': '/c10'})
    assert set(data_roots(cfg)) == {'/c10', 'data/cifar100'}


def test_nested_data_root_contradicting_the_others_is_refused():
    key = 'train_dataloader.dataset.dataset.data_root'
    with pytest.raises(ConfigConflictError) as err:
        merge_options(load(CE_CIFAR), {key: '/elsewhere'})
    message = str(err.value)
    assert f"{key}='/elsewhere'" in message
    assert "val_dataloader.dataset.dataset.data_root='data/cifar10'" in \
        message
    assert "--cfg-options data_root='/elsewhere'" in message
    with pytest.raises(ConfigConflictError, match='/elsewhere'):
        merge_options(
            load(CE_CIFAR), {
                'data_root': '/my/data',
                key: '/elsewhere'
            })


def test_osr_split_option_reaches_every_osr_dataset():
    cfg = merge_options(load(CE_CIFAR), {'osr_split': 3})
    splits = osr_splits(cfg)
    assert len(splits) >= 4 and set(splits) == {3}


def test_nested_split_contradicting_osr_split_is_refused():
    with pytest.raises(ConfigConflictError) as err:
        merge_options(
            load(CE_CIFAR), {'train_dataloader.dataset.split': 3})
    message = str(err.value)
    assert 'train_dataloader.dataset.split=3 contradicts osr_split=0' in \
        message
    assert '--cfg-options osr_split=3' in message
    # The same value as osr_split is no contradiction.
    cfg = merge_options(
        load(CE_CIFAR), {
            'osr_split': 2,
            'train_dataloader.dataset.split': 2
        })
    assert set(osr_splits(cfg)) == {2}


README_SNIPPET_MODEL = dict(
    data_preprocessor=dict(type='OSRDataPreprocessor', num_classes=6))


def test_model_data_preprocessor_keeps_the_base_normalisation():
    """The README's first snippet put the preprocessor inside ``model``,
    which hid mmpretrain's top-level mean / std."""
    cfg = load(EXAMPLE)
    cfg.pop('data_preprocessor')
    cfg.merge_from_dict(
        dict(
            data_preprocessor=dict(
                mean=[125.307, 122.961, 113.8575],
                std=[51.5865, 50.847, 51.255],
                to_rgb=True,
                num_classes=10),
            model=README_SNIPPET_MODEL))
    with logged_messages() as messages:
        merge_options(cfg)
    assert 'model.data_preprocessor.num_classes=6 overrides the top-level ' \
        'data_preprocessor.num_classes=10' in messages
    assert any('model.data_preprocessor: took mean=' in m for m in messages)
    model = MODELS.build(cfg.model)
    preprocessor = model.data_preprocessor
    assert preprocessor._enable_normalize and preprocessor.to_rgb
    torch.testing.assert_close(preprocessor.mean.flatten(),
                               torch.tensor([125.307, 122.961, 113.8575]))
    assert preprocessor.num_classes == 6  # the model's value wins


def test_preprocessor_without_mean_warns():
    with logged_messages() as messages:
        MODELS.build(dict(type='OSRDataPreprocessor', num_classes=2))
    assert any('OSRDataPreprocessor has no mean / std: the model gets raw '
               '0-255 pixels' in m for m in messages), messages
    with logged_messages() as messages:
        MODELS.build(
            dict(type='OSRDataPreprocessor', mean=[0] * 3, std=[1] * 3))
    assert not any('no mean / std' in m for m in messages)


def test_check_osr_evaluator():
    check_osr_evaluator(dict(type='OSRMetric'), 'test_evaluator')
    check_osr_evaluator([dict(type='Accuracy'), dict(type='OSRMetric')],
                        'test_evaluator')
    with pytest.raises(ValueError, match=r"test_evaluator has no OSRMetric "
                       r"\(found \['Accuracy'\]\)"):
        check_osr_evaluator(dict(type='Accuracy', topk=1), 'test_evaluator')


@pytest.mark.slow
@pytest.mark.parametrize(
    'path',
    sorted(glob.glob(osp.join(REPO, 'configs', '*.py')) +
           glob.glob(osp.join(REPO, 'configs', '*', '*.py'))),
    ids=osp.basename)
def test_shipped_configs_pass_the_variable_rule_unchanged(path):
    # A shipped config that changes a variable of its base updates every
    # place the base substituted it: nothing is refused, nothing changes
    # but the data_preprocessor merge.
    if '_base_' in path:
        pytest.skip('a base, not a config')
    cfg = Config.fromfile(path)
    assert cfg.runner_type == 'OSRRunner'
    apply_config_rules(cfg)


@pytest.mark.parametrize('option, message', [
    (dict(osr_spilt=3), r'osr_spilt=3 would be ignored: .* Did you mean '
     r'osr_split\?'),
    (dict(max_epochs=2), r'max_epochs=2 would be ignored'),
])
def test_tools_without_a_runner_refuse_ignored_options(option, message):
    """merge_options (tools/build_detector.py, infer.py,
    visualize_gradmix.py) applies the rules of OSRRunner: an option nothing
    reads is refused, not silently dropped."""
    from gradmix_plugin.utils import ConfigVariableError
    with pytest.raises(ConfigVariableError, match=message):
        merge_options(load(CE_CIFAR), option)
