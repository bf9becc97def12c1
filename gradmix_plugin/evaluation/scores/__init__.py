"""Registered open-set scores (``gradmix_plugin.registry.SCORES``).

One class per file, registry name = score name. Build one with
``SCORES.build(dict(type='react', percentile=90))``, fit it with
``.fit(train=dict(feats=..., logits=..., labels=...), val=None,
fc_weight=None, fc_bias=None)`` and score with ``.score(feats=...,
logits=...)`` (higher = more known). See ``docs/evaluation.md`` for the
formulas, inputs, defaults and sources.
"""
from ...registry import SCORES
from .base_score import NEEDS, BaseScore, ScoreInputError
from .class_knn import ClassKNNScore
from .energy import EnergyScore
from .knn import KNNScore
from .mahalanobis import MahalanobisScore
from .mls import MaxLogitScore
from .msp import MSPScore


def build_score(cfg) -> BaseScore:
    """Build a score from a name (``'react'``) or a config dict
    (``dict(type='react', percentile=90)``), refusing unknown names with
    the registered ones."""
    if isinstance(cfg, BaseScore):
        return cfg
    if isinstance(cfg, str):
        cfg = dict(type=cfg)
    return SCORES.build(cfg)


__all__ = [
    'SCORES', 'NEEDS', 'BaseScore', 'ScoreInputError', 'build_score',
    'ClassKNNScore', 'EnergyScore', 'KNNScore', 'MahalanobisScore',
    'MaxLogitScore', 'MSPScore'
]
