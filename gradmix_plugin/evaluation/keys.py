"""Metric keys of ``OSRMetric``: built and parsed here, and only here.

Grammar (``/``-separated)::

    [prefix/][ood=<source>/ | group=<group>/]<score>/<metric>
    [prefix/]accuracy

- ``prefix``: the metric's prefix (mmengine always adds one, ``osr`` by
  default); it may not contain ``=``.
- ``ood=<source>``: the known samples against one OOD source;
  ``group=<group>``: the mean over a group of sources (OpenOOD's near /
  far). The ``=`` marks them, so no prefix can be taken for a source (the
  previous ``ood_<source>`` made ``prefix='ood_eval'`` read as a source
  named ``eval``).
- ``score``: any registered score name (no ``/`` or ``=``).
- ``metric``: one of :data:`SCORE_METRICS`.

A key is a score key when its last part is a per-score metric and it has
a part before that which is not a subset; ``[prefix/]accuracy`` (the
model's closed-set accuracy) is not: with two parts, the first must be a
registered score (``'mls/auroc'``), so ``'osr/accuracy'`` stays the
model's accuracy. Keys read from ``osr_metrics.json`` always carry the
prefix, so a score the reader has never heard of is still parsed by name.
"""
from typing import NamedTuple, Optional, Tuple

from .functional import (
    CLASSIFICATION_METRICS,
    OPENOOD_METRICS,
    RANKING_METRICS,
)

#: Metrics reported per score (and per subset).
SCORE_METRICS = RANKING_METRICS + CLASSIFICATION_METRICS + OPENOOD_METRICS
#: Marks the key part of one OOD source: ``ood=<source>``.
SOURCE_MARK = 'ood='
#: Marks the key part of a group of OOD sources: ``group=<group>``.
GROUP_MARK = 'group='
#: The model's closed-set accuracy key (after the prefix).
MODEL_ACCURACY = 'accuracy'


class MetricKey(NamedTuple):
    """A parsed metric key.

    Args:
        prefix (str, optional): Everything before the subset / score.
        subset (str, optional): ``'ood=<source>'`` or ``'group=<group>'``.
        score (str, optional): The score name (None: not a score key).
        metric (str): The metric name (the whole key if not a score key).
    """
    prefix: Optional[str]
    subset: Optional[str]
    score: Optional[str]
    metric: str

    @property
    def source(self) -> Optional[str]:
        """The OOD source name of ``ood=<source>`` keys."""
        if self.subset and self.subset.startswith(SOURCE_MARK):
            return self.subset[len(SOURCE_MARK):]
        return None

    @property
    def group(self) -> Optional[str]:
        """The group name of ``group=<group>`` keys."""
        if self.subset and self.subset.startswith(GROUP_MARK):
            return self.subset[len(GROUP_MARK):]
        return None


def check_key_name(name: str, what: str) -> str:
    """Refuse names that would make keys ambiguous (``/`` or ``=``, empty).

    Args:
        name (str): A score, source, group or prefix name.
        what (str): What it is, for the error message.

    Returns:
        str: ``name``.
    """
    if not isinstance(name, str) or not name or '=' in name or (
            what != 'prefix' and '/' in name):
        raise ValueError(
            f'{what} {name!r} cannot be used in metric keys: it must be a '
            "non-empty string without '='" +
            ('' if what == 'prefix' else " or '/'"))
    return name


def subset_part(source: Optional[str] = None,
                group: Optional[str] = None) -> str:
    """The key part of an OOD source or group (``''`` for neither)."""
    if source is not None and group is not None:
        raise ValueError('pass source or group, not both')
    if source is not None:
        return SOURCE_MARK + check_key_name(str(source), 'OOD source')
    if group is not None:
        return GROUP_MARK + check_key_name(str(group), 'OOD group')
    return ''


def build_metric_key(score: Optional[str],
                     metric: str,
                     source: Optional[str] = None,
                     group: Optional[str] = None,
                     prefix: Optional[str] = None) -> str:
    """Build ``[prefix/][ood=<source>/|group=<group>/][score/]metric``.

    Args:
        score (str, optional): Score name; None for the model accuracy.
        metric (str): Metric name.
        source (str, optional): OOD source. Defaults to None.
        group (str, optional): OOD group. Defaults to None.
        prefix (str, optional): Prefix. Defaults to None.

    Returns:
        str: The key.
    """
    parts = []
    if prefix:
        parts.append(check_key_name(prefix, 'prefix'))
    subset = subset_part(source, group)
    if subset:
        parts.append(subset)
    if score is not None:
        parts.append(check_key_name(score, 'score'))
    parts.append(metric)
    return '/'.join(parts)


def _is_subset(part: str) -> bool:
    return part.startswith((SOURCE_MARK, GROUP_MARK))


def _registered(name: str) -> bool:
    from ..registry import SCORES
    return name in SCORES.module_dict


def parse_metric_key(key: str) -> MetricKey:
    """Parse a key of the grammar above.

    Examples:
        >>> parse_metric_key('osr/ood=tin/mls/auroc')
        MetricKey(prefix='osr', subset='ood=tin', score='mls', metric='auroc')
        >>> parse_metric_key('ood_eval/mls/auroc')
        MetricKey(prefix='ood_eval', subset=None, score='mls', metric='auroc')
        >>> parse_metric_key('osr/accuracy')
        MetricKey(prefix=None, subset=None, score=None, metric='osr/accuracy')
    """
    parts = key.split('/')
    if len(parts) >= 2 and parts[-1] in SCORE_METRICS and not _is_subset(
            parts[-2]) and '=' not in parts[-2]:
        rest = parts[:-2]
        subset = rest.pop() if rest and _is_subset(rest[-1]) else None
        if rest or subset or _registered(parts[-2]):
            return MetricKey('/'.join(rest) or None, subset, parts[-2],
                             parts[-1])
    return MetricKey(None, None, None, key)


def split_ood_subset(key: str) -> Tuple[Optional[str], str]:
    """Split the OOD subset out of a metric key.

    ``'osr/ood=tin/mls/auroc'`` gives ``('ood=tin', 'osr/mls/auroc')``,
    ``'osr/group=far/mls/auroc'`` gives ``('group=far', 'osr/mls/auroc')``;
    keys of all samples (``'osr/mls/auroc'``, ``'ood_eval/mls/auroc'``)
    and keys that are not score keys give ``(None, key)``.
    """
    parsed = parse_metric_key(key)
    if parsed.subset is None:
        return None, key
    return parsed.subset, build_metric_key(parsed.score, parsed.metric,
                                           prefix=parsed.prefix)


def split_metric_key(key: str) -> Tuple[Optional[str], str]:
    """Split ``'[prefix/]score/metric'`` into ``(score, metric)``.

    Keys that are not score keys (e.g. ``'osr/accuracy'``) and the keys of
    one OOD source or group (e.g. ``'osr/ood=tin/mls/auroc'``, see
    :func:`split_ood_subset`) give ``(None, key)``.
    """
    parsed = parse_metric_key(key)
    if parsed.score is None or parsed.subset is not None:
        return None, key
    return parsed.score, parsed.metric


def subset_label(subset: Optional[str]) -> str:
    """Table label of a subset: the source, ``'<group> (mean)'`` or
    ``'all'``."""
    if subset is None:
        return 'all'
    if subset.startswith(GROUP_MARK):
        return f'{subset[len(GROUP_MARK):]} (mean)'
    return subset[len(SOURCE_MARK):]
