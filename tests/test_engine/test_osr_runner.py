"""OSRRunner: config variables refused or propagated on the merged config,
the plain-runner warning, the renamed hook, and an import that changes
nothing but the registries."""
import json
import os.path as osp
import subprocess
import sys
import types

import pytest
from helpers import ENV, REPO, logged_messages
from mmengine.config import Config
from mmengine.registry import RUNNERS as MMENGINE_RUNNERS
from mmpretrain.registry import HOOKS, RUNNERS

import gradmix_plugin  # noqa: F401  (registers the plugin)
from gradmix_plugin.engine.hooks import GradMixModelHook, LayerCAMHook
from gradmix_plugin.engine.runner import OSRRunner
from gradmix_plugin.utils.config_rules import (
    ConfigVariableError,
    apply_config_rules,
)

DIGITS = osp.join(REPO, 'configs', 'gradmix_resnet18_digits.py')


def digits(tmp_path, **options):
    cfg = Config.fromfile(DIGITS)
    cfg.work_dir = str(tmp_path)
    cfg.merge_from_dict(options)
    return cfg


def test_runner_type_resolves_in_both_registries():
    # mmengine's and mmpretrain's tools call mmengine's RUNNERS.build.
    assert MMENGINE_RUNNERS.get('OSRRunner') is OSRRunner
    assert RUNNERS.get('OSRRunner') is OSRRunner
    assert Config.fromfile(DIGITS).runner_type == 'OSRRunner'


def test_typo_is_refused_naming_the_closest_key(tmp_path):
    with pytest.raises(ConfigVariableError,
                       match=r'osr_spilt=3 would be ignored: no top-level '
                       r'key osr_spilt .* Did you mean osr_split\?'):
        MMENGINE_RUNNERS.build(digits(tmp_path, osr_spilt=3))


@pytest.mark.parametrize('option, nested', [
    (dict(max_epochs=2), 'train_cfg.max_epochs'),
    (dict(lr=0.01), 'optim_wrapper.optimizer.lr'),
])
def test_substituted_variable_is_refused_naming_nested_keys(
        tmp_path, option, nested):
    key, value = next(iter(option.items()))
    with pytest.raises(ConfigVariableError) as error:
        MMENGINE_RUNNERS.build(digits(tmp_path, **option))
    message = str(error.value)
    assert message.startswith(f'{key}={value!r} would be ignored: {key} '
                              'is a variable of')
    assert f'--cfg-options {nested}={value!r}' in message
    # Nothing started: no log, no checkpoint in the work dir.
    assert not any(p.suffix == '.pth' for p in tmp_path.rglob('*'))


def test_variable_set_with_its_nested_keys_is_accepted(tmp_path):
    cfg = digits(tmp_path, max_epochs=2, **{'train_cfg.max_epochs': 2})
    apply_config_rules(cfg)
    assert cfg.train_cfg.max_epochs == 2


def test_child_config_variable_is_checked(tmp_path):
    stale = tmp_path / 'stale.py'
    stale.write_text(f'_base_ = [{DIGITS!r}]\nmax_epochs = 3\n')
    with pytest.raises(ConfigVariableError,
                       match='max_epochs=3 would be ignored'):
        apply_config_rules(Config.fromfile(str(stale)))
    fresh = tmp_path / 'fresh.py'
    fresh.write_text(f'_base_ = [{DIGITS!r}]\nmax_epochs = 3\n'
                     'train_cfg = dict(max_epochs=max_epochs)\n')
    apply_config_rules(Config.fromfile(str(fresh)))


def test_osr_split_propagates_and_unread_data_root_is_refused(tmp_path):
    cfg = apply_config_rules(digits(tmp_path, osr_split=2))
    splits = {d['split'] for d in _osr_datasets(cfg)}
    assert splits == {2}
    # The digits demo reads no files: a data_root would change nothing.
    with pytest.raises(ConfigVariableError,
                       match=r"data_root='/elsewhere' would be ignored: no "
                       'dataset of the config shares the data root'):
        apply_config_rules(digits(tmp_path, data_root='/elsewhere'))


def _osr_datasets(cfg):
    from gradmix_plugin.utils.config_rules import find_osr_datasets
    return find_osr_datasets(cfg._cfg_dict)


def test_rules_are_idempotent(tmp_path):
    cfg = apply_config_rules(digits(tmp_path, osr_split=3))
    again = apply_config_rules(Config(cfg._cfg_dict.to_dict(),
                                      filename=cfg.filename))
    assert again._cfg_dict.to_dict() == cfg._cfg_dict.to_dict()


def test_plugin_hook_under_plain_runner_warns_once():
    runner = types.SimpleNamespace()
    with logged_messages() as messages:
        GradMixModelHook().before_run(runner)
        GradMixModelHook().before_run(runner)
    warnings = [m for m in messages if 'not OSRRunner' in m]
    assert len(warnings) == 1
    assert "Add the line `runner_type = 'OSRRunner'`" in warnings[0]
    assert warnings[0].startswith('GradMixModelHook runs under')


def test_layercam_hook_is_a_deprecated_name():
    with pytest.warns(DeprecationWarning,
                      match=r"LayerCAMHook is deprecated: use "
                      r"dict\(type='GradMixModelHook'\)"):
        hook = HOOKS.build(dict(type='LayerCAMHook'))
    assert isinstance(hook, GradMixModelHook)
    assert isinstance(hook, LayerCAMHook)


@pytest.mark.slow
def test_import_changes_no_warning_filter_or_checkpoint_loader():
    # The libraries the plugin imports come first: their own filters are
    # theirs. Then importing the plugin must change nothing global.
    script = '''
import json, warnings
import numpy, scipy.special, sklearn.metrics, torch
import mmengine.runner, mmpretrain.models, mmpretrain.datasets
import mmpretrain.engine, mmpretrain.evaluation, mmpretrain.apis
from mmengine.runner import CheckpointLoader
filters = list(warnings.filters)
schemes = dict(CheckpointLoader._schemes)
import gradmix_plugin
print(json.dumps(dict(
    filters=[str(f) for f in warnings.filters if f not in filters],
    schemes=[k for k in CheckpointLoader._schemes
             if CheckpointLoader._schemes[k] is not schemes.get(k)])))
'''
    result = subprocess.run([sys.executable, '-c', script],
                            cwd=REPO,
                            env=ENV,
                            capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    changed = json.loads(result.stdout.strip().splitlines()[-1])
    assert changed == dict(filters=[], schemes=[])


def test_dataset_replaced_since_the_file_was_read_is_not_tied():
    # A test (or a user) swapping in a dataset without data_root: the
    # datasets that still share the file's root are checked, not this one.
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'ce_resnet18_cifar10.py'))
    cfg.train_dataloader.dataset.dataset = dict(
        type='DigitsDataset', split='train')
    apply_config_rules(cfg)
    assert cfg.train_dataloader.dataset.dataset == dict(
        type='DigitsDataset', split='train')


def test_report_hook_without_osr_metric_says_so(tmp_path):
    from gradmix_plugin.engine.hooks import OSRReportHook
    runner = types.SimpleNamespace(
        test_evaluator=types.SimpleNamespace(metrics=[]),
        logger=types.SimpleNamespace(
            warning=lambda message: messages.append(message)),
        work_dir=str(tmp_path))
    messages = []
    OSRReportHook().after_test_epoch(runner, metrics={'accuracy': 50.0})
    assert messages == [
        'OSRReportHook: test_evaluator has no OSRMetric; no '
        'osr_metrics.json is written'
    ]
    assert not (tmp_path / 'osr_metrics.json').exists()
