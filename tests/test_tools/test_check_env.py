"""tools/check_env.py: versions, devices and PASS / FAIL on this CPU."""
import numpy as np
import torch
from helpers import load_tool


def test_every_check_passes_on_cpu(capsys):
    tool = load_tool('check_env')
    assert tool.main(['--device', 'cpu']) == 0
    out = capsys.readouterr().out
    for line in ('torch: ', 'mmengine: ', 'mmpretrain: ', 'mmcv flavour: ',
                 'faiss GPU support: ', 'checks run on: cpu'):
        assert line in out
    for name in ('GradMix contrastive step (',
                 'GradMix contrastive step, bf16 autocast (',
                 'GradMix CE step (', 'GradMix CE step, bf16 autocast (',
                 'faiss kNN search (', 'distributed init / teardown (gloo'):
        assert f'PASS  {name}' in out, out
    assert 'all checks passed' in out


def test_a_failing_check_is_reported_and_counted(capsys, monkeypatch):
    tool = load_tool('check_env')
    monkeypatch.setattr(tool, 'knn_scores',
                        lambda query, *args, **kwargs: np.zeros(len(query)))
    only_faiss = [c for c in tool.checks(torch.device('cpu'))
                  if c[0] == 'faiss kNN search']
    monkeypatch.setattr(tool, 'checks', lambda device: only_faiss)
    assert tool.main(['--device', 'cpu']) == 1
    out = capsys.readouterr().out
    assert 'FAIL  faiss kNN search: RuntimeError: faiss kNN scores differ ' \
        'from numpy' in out
    assert '1 check(s) failed' in out
