"""Smoke test of benchmarks/benchmark_inference.py in ``--quick`` mode."""
import pytest
from test_benchmark_scripts import MACHINE_KEYS, run_script


@pytest.mark.slow
def test_benchmark_inference_quick(tmp_path):
    results = run_script('benchmark_inference.py',
                         str(tmp_path / 'inference.json'))
    assert set(MACHINE_KEYS) <= set(results['machine'])
    for name in ('digits', 'cifar'):
        entry = results['throughput'][name]
        assert entry['ratio'] > 0 and len(entry['ratio_paired']) == 1
        assert entry['detector_scoring']['n'] == 1
    build = results['detector_build']
    assert build['size_float16_mib'] < build['size_float32_mib']
