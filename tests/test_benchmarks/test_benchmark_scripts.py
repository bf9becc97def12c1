"""Smoke tests of the benchmark scripts in ``--quick`` mode."""
import json
import os
import os.path as osp
import subprocess
import sys

import pytest

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ENV = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
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


def assert_positive_stats(stats: dict, count: int) -> None:
    assert stats['n'] == count == len(stats['samples_s'])
    assert all(sample > 0 for sample in stats['samples_s'])
    assert stats['q1_s'] <= stats['median_s'] <= stats['q3_s']


def test_benchmark_training_quick(tmp_path):
    results = run_script('benchmark_training.py',
                         str(tmp_path / 'training.json'))
    assert all(key in results['machine'] for key in MACHINE_KEYS)
    repeats = results['settings']['repeats']
    assert set(results['steps']) == set(RECIPES)
    for step in results['steps'].values():
        assert_positive_stats(step, repeats)
        baseline = results['steps'][step['baseline']]
        assert step['ratio_to_baseline'] == pytest.approx(
            step['median_s'] / baseline['median_s'])
        assert step['peak_memory_mib'] > 0
    assert set(results['attribution']) == {'supcon_simclr_gradmix',
                                           'ce_gradmix'}
    for recipe, entry in results['attribution'].items():
        assert_positive_stats(entry['attribution'], repeats)
        assert_positive_stats(entry['baseline_forward_backward'], repeats)
        assert entry['share_of_step'] == pytest.approx(
            entry['attribution']['median_s'] /
            results['steps'][recipe]['median_s'])


def test_benchmark_framework_overhead_quick(tmp_path):
    results = run_script('benchmark_framework_overhead.py',
                         str(tmp_path / 'overhead.json'))
    assert all(key in results['machine'] for key in MACHINE_KEYS)
    settings = results['settings']
    count = settings['iters'] * settings['rounds']
    assert set(results['loops']) == {'bare', 'mmengine'}
    for stats in results['loops'].values():
        assert_positive_stats(stats, count)
    assert results['overhead_ratio'] == pytest.approx(
        results['loops']['mmengine']['median_s'] /
        results['loops']['bare']['median_s'])


def test_benchmark_evaluator_quick(tmp_path):
    results = run_script('benchmark_evaluator.py',
                         str(tmp_path / 'evaluator.json'))
    dims = results['settings']['dims']
    for dim in dims:
        for name in ('class_knn/faiss', 'class_knn/torch', 'knn/faiss',
                     'knn/raw_faiss'):
            stats = results['timings'][f'{name}/{dim}']
            assert all(sample > 0 for sample in stats['samples_s'])
        ratio = results['targets']['knn_ratio_to_raw_faiss'][str(dim)]
        assert ratio == pytest.approx(
            results['timings'][f'knn/faiss/{dim}']['median_s'] /
            results['timings'][f'knn/raw_faiss/{dim}']['median_s'])
