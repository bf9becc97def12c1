"""Smoke test of ``benchmarks/benchmark_memory.py`` in ``--quick`` mode."""
import pytest
from test_benchmark_scripts import run_script


@pytest.mark.slow
def test_benchmark_memory_quick(tmp_path):
    results = run_script('benchmark_memory.py', str(tmp_path / 'memory.json'))
    steps = results['steps']
    assert set(steps) == {'plain', 'gradmix', 'gradmix_single',
                          'gradmix_lean'}
    assert steps['gradmix_lean']['options'] == dict(memory='lean')
    # The lean step holds one graph at a time, the default step two.
    assert steps['gradmix_lean']['memory_ratio_to_plain'] < \
        steps['gradmix']['memory_ratio_to_plain']
