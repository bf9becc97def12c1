"""One behaviour whatever the entry point: the digits demo trained and
tested through (a) the plugin's tools, (b) mmpretrain's installed tools
(what ``mim train mmpretrain`` runs) and (c) ``RUNNERS.build(cfg)`` in
Python gives the same weights and the same ``osr_metrics.json``; the
``osr_split`` option takes effect, and a checkpoint of another split and
an unread ``data_root`` are refused, under each."""
import json
import os.path as osp
import sys

import pytest
import torch
from helpers import REPO, mmpretrain_tool, run_tool

from gradmix_plugin.evaluation import load_osr_metrics
from gradmix_plugin.utils import free_port

CONFIG = osp.join(REPO, 'configs', 'gradmix_resnet18_digits.py')
#: 1 epoch on 20 images per known class, split 2, seed 0.
OPTIONS = {
    'train_cfg.max_epochs': 1,
    'train_dataloader.dataset.max_per_class': 20,
    'randomness.seed': 0,
    'osr_split': 2,
}
PYTHON = '''
import json, sys
from mmengine.config import Config
from mmengine.registry import RUNNERS
mode, config, work_dir, options = sys.argv[1:5]
cfg = Config.fromfile(config)
cfg.work_dir = work_dir
cfg.merge_from_dict(json.loads(options))
if mode == 'test':
    cfg.load_from = sys.argv[5]
runner = RUNNERS.build(cfg)
runner.train() if mode == 'train' else runner.test()
'''


def options_args(options):
    if not options:
        return []
    return ['--cfg-options'] + [f'{k}={v}' for k, v in options.items()]


def command(entry, mode, work_dir, options, checkpoint=None):
    if entry == 'python':
        return [sys.executable, '-c', PYTHON, mode, CONFIG, work_dir,
                json.dumps(options)] + ([checkpoint] if checkpoint else [])
    tool = (osp.join(REPO, 'tools', f'{mode}.py')
            if entry == 'plugin' else mmpretrain_tool(mode))
    return ([sys.executable, tool, CONFIG] +
            ([checkpoint] if checkpoint else []) +
            ['--work-dir', work_dir] + options_args(options))


ENTRIES = ('plugin', 'mmpretrain', 'python')


@pytest.mark.slow
def test_same_run_under_every_entry_point(tmp_path):
    weights, metrics = {}, {}
    for entry in ENTRIES:
        work_dir = str(tmp_path / entry)
        run_tool(command(entry, 'train', work_dir, OPTIONS))
        checkpoint = osp.join(work_dir, 'epoch_1.pth')
        loaded = torch.load(checkpoint, weights_only=False)
        # osr_split reached the training set, and provenance is recorded.
        assert loaded['meta']['dataset_meta']['split'] == 2
        assert loaded['meta']['provenance']['split'] == 2
        weights[entry] = loaded['state_dict']

        run_tool(command(entry, 'test', work_dir, {'osr_split': 2},
                         checkpoint))
        report = osp.join(work_dir, 'osr_metrics.json')
        metrics[entry] = load_osr_metrics(report)
        with open(report) as file:
            recorded = json.load(file)['provenance']
        assert recorded['split'] == 2
        assert recorded['checkpoint'] == osp.abspath(checkpoint)

        # The config's own split (0) against the split-2 checkpoint.
        refused = run_tool(
            command(entry, 'test', str(tmp_path / f'{entry}_0'), {},
                    checkpoint),
            check=False)
        assert refused.returncode != 0
        assert 'ProvenanceMismatchError' in refused.stderr
        assert 'osr_split=<k>' in refused.stderr

        refused = run_tool(
            command(entry, 'train', str(tmp_path / f'{entry}_root'),
                    dict(OPTIONS, data_root='/elsewhere')),
            check=False)
        assert refused.returncode != 0
        assert "data_root='/elsewhere' would be ignored" in refused.stderr

    for entry in ENTRIES[1:]:
        assert weights[entry].keys() == weights['plugin'].keys()
        assert all(
            torch.equal(weights[entry][k], weights['plugin'][k])
            for k in weights['plugin']), entry
        assert metrics[entry] == metrics['plugin'], entry
    assert metrics['plugin']  # the report has values


@pytest.mark.slow
def test_mmpretrain_tool_under_torchrun_on_cpu(tmp_path):
    # mmengine's own init_dist needs CUDA; the runner sets up gloo, adds
    # SyncBuffersHook and tears the group down, also under mmpretrain's
    # tools/train.py.
    work_dir = str(tmp_path / 'ddp')
    result = run_tool([
        sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node',
        '2', '--master_port',
        str(free_port()),
        mmpretrain_tool('train'), CONFIG, '--launcher', 'pytorch',
        '--work-dir', work_dir
    ] + options_args({
        'train_cfg.max_epochs': 1,
        'train_dataloader.dataset.max_per_class': 20
    }))
    output = result.stdout + result.stderr
    assert 'initialised gloo process group: rank 1 of 2' in output
    assert 'SyncBuffersHook' in output
    assert 'terminate called' not in output
    assert osp.isfile(osp.join(work_dir, 'epoch_1.pth'))
