"""benchmark_scores.py --quick runs and writes every score's timings (no
assertion about speed)."""
import json
import os.path as osp

import pytest
from helpers import REPO, run_tool


@pytest.mark.slow
def test_quick_benchmark(tmp_path):
    out = str(tmp_path / 'scores.json')
    run_tool(['python', osp.join(REPO, 'benchmarks', 'benchmark_scores.py'),
              '--quick', '--out', out])
    with open(out) as f:
        results = json.load(f)
    names = {case['score'] for case in results['cases']}
    assert {'gradnorm', 'vim', 'react', 'knn', 'msp'} <= names
    for case in results['cases']:
        assert case['ours']['total_s'] >= 0
        assert case['openood']['total_s'] >= 0
    assert results['one_pass'][0]['osr_metric_s'] > 0
