"""Registries of the plugin's own component kinds.

Components of kinds mmpretrain already has (models, datasets, metrics,
hooks, ...) are registered into mmpretrain's registries. This module holds
the kinds mmpretrain lacks:

- :data:`SCORES`: open-set / OOD scores (``BaseScore`` subclasses), built
  by ``OSRMetric`` and by the open-set detector, e.g.
  ``SCORES.build(dict(type='react', percentile=90))``.
"""
import copy
from typing import Any, Optional

from mmengine.registry import Registry


def build_score_from_cfg(cfg: dict,
                         registry: Registry,
                         default_args: Optional[dict] = None) -> Any:
    """Build a score from ``dict(type=name, **kwargs)``.

    Unlike mmengine's ``build_from_cfg`` it does not switch to the default
    scope's registry: scores live in this registry whatever the runner's
    ``default_scope`` (``'mmpretrain'`` in the configs), so they build
    without the "failed to search registry with scope" warning.
    Unknown names are refused with the registered ones.
    """
    if not isinstance(cfg, dict) or 'type' not in cfg:
        raise TypeError(
            f'a score config is a dict with a type, got {cfg!r}')
    args = copy.deepcopy(dict(cfg))
    for key, value in (default_args or {}).items():
        args.setdefault(key, value)
    name = args.pop('type')
    score_cls = registry.get(name) if isinstance(name, str) else name
    if score_cls is None:
        raise KeyError(
            f'unknown score {name!r}; registered scores: '
            f'{sorted(registry.module_dict)}')
    return score_cls(**args)


#: Open-set scores: one registered class per detector (registry name =
#: the score name used in configs, metric keys and reports).
SCORES = Registry(
    'ood score',
    build_func=build_score_from_cfg,
    scope='gradmix_plugin',
    locations=['gradmix_plugin.evaluation.scores'])

__all__ = ['SCORES', 'build_score_from_cfg']
