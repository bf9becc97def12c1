"""The digits config that evaluates every registered score, through
tools/train.py and tools/test.py; the report lists every score."""
import glob
import json
import os.path as osp

import pytest
from helpers import REPO, run_tool
from mmengine.config import Config

from gradmix_plugin.registry import SCORES

CONFIG = osp.join(REPO, 'configs', 'all_scores_resnet18_digits.py')


def listed_scores(cfg):
    return [s if isinstance(s, str) else s.get('name', s['type'])
            for s in cfg.test_evaluator.scores]


def test_config_lists_every_registered_score():
    assert sorted(listed_scores(Config.fromfile(CONFIG))) == sorted(
        SCORES.module_dict)


@pytest.mark.slow
def test_every_score_through_the_tools(tmp_path):
    work_dir = str(tmp_path / 'work')
    run_tool([
        'python', 'tools/train.py', CONFIG, '--work-dir', work_dir,
        '--cfg-options', 'train_cfg.max_epochs=2', 'train_cfg.val_interval=2'
    ])
    checkpoint = sorted(glob.glob(osp.join(work_dir, 'epoch_*.pth')))[-1]
    run_tool(['python', 'tools/test.py', CONFIG, checkpoint, '--work-dir',
              work_dir])
    found = glob.glob(osp.join(work_dir, '**', 'osr_metrics.json'),
                      recursive=True)
    with open(sorted(found, key=osp.getmtime)[-1]) as f:
        metrics = json.load(f)
    table = open(osp.join(osp.dirname(found[-1]), 'osr_metrics.md')).read()
    for name in SCORES.module_dict:
        assert f'osr/{name}/auroc' in metrics, name
        assert f'| {name} |' in table, name
