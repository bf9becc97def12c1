"""Smoke test of the backbone families of benchmark_training.py."""
import json
import os.path as osp
import subprocess
import sys

import pytest
from helpers import ENV, REPO

FAMILY_RECIPES = {
    'ce_vit': 'ce_vit', 'ce_gradmix_vit': 'ce_vit',
    'supcon_simclr_vit': 'supcon_simclr_vit',
    'supcon_simclr_gradmix_vit': 'supcon_simclr_vit',
    'ce_convnext': 'ce_convnext', 'ce_gradmix_convnext': 'ce_convnext',
    'supcon_simclr_resnet50': 'supcon_simclr_resnet50',
    'supcon_simclr_gradmix_resnet50': 'supcon_simclr_resnet50',
}


@pytest.mark.slow
def test_backbone_families_quick(tmp_path):
    out = tmp_path / 'training.json'
    completed = subprocess.run(
        [sys.executable, osp.join(REPO, 'benchmarks', 'benchmark_training.py'),
         '--quick', '--repeats', '1', '--warmup', '0', '--backbones', 'vit',
         'convnext', 'resnet50', '--out', str(out)],
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads(out.read_text())
    steps = results['steps']
    assert {r: s['baseline'] for r, s in steps.items()} == FAMILY_RECIPES
    assert results['settings']['image_sizes'][
        'supcon_simclr_gradmix_resnet50'] == 32  # twice --image-size 16
    assert set(results['attribution']) == {
        r for r in FAMILY_RECIPES if 'gradmix' in r}
    for recipe, entry in results['attribution'].items():
        assert entry['share_of_step'] == pytest.approx(
            entry['attribution']['median_s'] / steps[recipe]['median_s'])
