"""Smoke test of ``benchmarks/benchmark_memory.py`` in ``--quick`` mode."""
import pytest
from test_benchmark_scripts import (
    MACHINE_KEYS,
    assert_positive_stats,
    run_script,
)


def test_benchmark_memory_quick(tmp_path):
    results = run_script('benchmark_memory.py', str(tmp_path / 'memory.json'))
    assert all(key in results['machine'] for key in MACHINE_KEYS)
    steps = results['steps']
    assert set(steps) == {'plain', 'gradmix', 'gradmix_single',
                          'gradmix_lean'}
    assert steps['gradmix_lean']['options'] == dict(memory='lean')
    for step in steps.values():
        assert_positive_stats(step, results['settings']['repeats'])
        assert step['ratio_to_plain'] == pytest.approx(
            step['median_s'] / steps['plain']['median_s'])
        assert step['peak_memory_mib'] > 0
    # The lean step holds one graph at a time, the default step two.
    assert steps['gradmix_lean']['memory_ratio_to_plain'] < \
        steps['gradmix']['memory_ratio_to_plain']
