"""Smoke tests of the benchmark scripts in ``--quick`` mode."""
import json
import os.path as osp
import subprocess
import sys

import pytest
from helpers import ENV, REPO

RECIPES = ('supcon_simclr', 'supcon_simclr_gradmix', 'ce', 'ce_mixup',
           'ce_cutmix', 'ce_gradmix')
MACHINE_KEYS = ('date_utc', 'cpu_model', 'logical_cores', 'torch_threads',
                'torch', 'mmengine', 'mmpretrain')


def run_script(name: str, out: str) -> dict:
    completed = subprocess.run(
        [sys.executable,
         osp.join(REPO, 'benchmarks', name), '--quick', '--out', out],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=120)
    assert completed.returncode == 0, completed.stderr[-3000:]
    with open(out) as file:
        return json.load(file)


@pytest.mark.slow
def test_benchmark_training_quick(tmp_path):
    # One crash test: the script runs every recipe and its attribution.
    results = run_script('benchmark_training.py',
                         str(tmp_path / 'training.json'))
    assert all(key in results['machine'] for key in MACHINE_KEYS)
    assert set(results['steps']) == set(RECIPES)
    assert set(results['attribution']) == {'supcon_simclr_gradmix',
                                           'ce_gradmix'}


@pytest.mark.slow
def test_benchmark_framework_overhead_quick(tmp_path):
    results = run_script('benchmark_framework_overhead.py',
                         str(tmp_path / 'overhead.json'))
    assert set(results['loops']) == {'bare', 'mmengine'}


@pytest.mark.slow
def test_benchmark_evaluator_quick(tmp_path):
    results = run_script('benchmark_evaluator.py',
                         str(tmp_path / 'evaluator.json'))
    assert results['timings']
