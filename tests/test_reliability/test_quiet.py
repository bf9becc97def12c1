"""The plugin's commands print no warnings of other libraries that the
plugin's own code triggers (mmcv-lite's MultiScaleDeformableAttention,
setuptools' pkg_resources, mmengine's FileClient / HardDiskBackend, torch's
requires_grad conversion)."""
import glob
import os.path as osp
import subprocess
import sys
import warnings

import pytest
from helpers import load_tool
from reliability_helpers import (
    ENV,
    REPO,
    ce_gradmix_model,
    loader,
    run_tool,
    runtime,
    write_config,
)

QUIET = ('MultiScaleDeformableAttention', 'pkg_resources is deprecated',
         '"FileClient" will be deprecated', '"HardDiskBackend" is the alias',
         'requires_grad=True to a scalar')


@pytest.mark.slow
def test_a_tool_reading_an_mmpretrain_based_config_is_quiet(tmp_path):
    result = subprocess.run(
        [sys.executable, 'tools/test.py',
         'configs/examples/mmpretrain_project_ce_gradmix.py',
         str(tmp_path / 'missing.pth'), '--work-dir', str(tmp_path)],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert 'checkpoint file not found' in output  # it got that far
    for message in QUIET:
        assert message not in output, message


@pytest.mark.slow
def test_training_logs_no_file_client_deprecation(tmp_path, png_root):
    cfg = write_config(
        tmp_path / 'quiet.py',
        model=ce_gradmix_model(),
        train_dataloader=loader(
            dict(type='CustomDataset', data_root=png_root,
                 pipeline=[dict(type='LoadImageFromFile'),
                           dict(type='PackInputs')]), 8),
        **runtime(1, custom_hooks=[dict(type='GradMixModelHook')]))
    run_tool('train', cfg, '--work-dir', str(tmp_path / 'work'))
    log, = glob.glob(osp.join(tmp_path, 'work', '*', '*.log'))
    text = open(log).read()
    assert 'Saving checkpoint at 1 epochs' in text
    for message in QUIET:
        assert message not in text, message


@pytest.mark.slow
def test_check_env_is_quiet(capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        assert load_tool('check_env').main(['--device', 'cpu']) == 0
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if 'requires_grad=True' in m], messages
