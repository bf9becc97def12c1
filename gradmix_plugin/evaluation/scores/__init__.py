"""Registered open-set scores (``gradmix_plugin.registry.SCORES``).

One class per file, registry name = score name. Build one with
``SCORES.build(dict(type='react', percentile=90))``, fit it with
``.fit(train=dict(feats=..., logits=..., labels=...), val=None,
fc_weight=None, fc_bias=None)`` and score with ``.score(feats=...,
logits=...)`` (higher = more known). See ``docs/evaluation.md`` for the
formulas, inputs, defaults and sources.
"""
from ...registry import SCORES
from .ash import ASHScore
from .base_score import NEEDS, BaseScore, ScoreInputError
from .class_knn import ClassKNNScore
from .dice import DICEScore
from .energy import EnergyScore
from .fdbd import FDBDScore
from .gen import GENScore
from .gradnorm import GradNormScore
from .kl_matching import KLMatchingScore
from .knn import KNNScore
from .mahalanobis import MahalanobisScore
from .mls import MaxLogitScore
from .msp import MSPScore
from .nnguide import NNGuideScore
from .react import ReActScore
from .rmds import RMDSScore
from .scale import SCALEScore
from .selection import OPENOOD_GRIDS, select_score
from .she import SHEScore
from .temp_scaling import TemperatureScalingScore
from .vim import ViMScore

#: The post-hoc detectors of OpenOOD v1.5 registered besides the six
#: original scores, in report order.
POSTHOC_SCORES = ('temp_scaling', 'gen', 'klm', 'react', 'ash', 'scale',
                  'dice', 'vim', 'rmds', 'she', 'nnguide', 'fdbd',
                  'gradnorm')


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
    'SCORES', 'NEEDS', 'POSTHOC_SCORES', 'BaseScore', 'ScoreInputError',
    'build_score', 'ASHScore', 'ClassKNNScore', 'DICEScore', 'EnergyScore',
    'FDBDScore', 'GENScore', 'GradNormScore', 'KLMatchingScore', 'KNNScore',
    'MahalanobisScore', 'MaxLogitScore', 'MSPScore', 'NNGuideScore',
    'ReActScore', 'RMDSScore', 'SCALEScore', 'SHEScore',
    'TemperatureScalingScore', 'ViMScore', 'OPENOOD_GRIDS', 'select_score'
]
