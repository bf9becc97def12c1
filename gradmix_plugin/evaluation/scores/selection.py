"""Hyper-parameter selection without the test set (like OpenOOD's APS).

For a score and a grid of its arguments, every grid point is fitted on the
training bank (and the held-out known samples, for the scores that fit on
them), then the known held-out samples are ranked against an OOD
validation source; the point with the highest AUROC is kept (ties: the
first in grid order); a point that cannot be fitted (e.g. ViM's
``dim=1000`` on 512-d features) is recorded with its error and skipped.
The test set is never read. OpenOOD v1.5's
automatic parameter search (APS) does the same with its ID and OOD
validation sets (e.g. ``val_cifar100.txt`` for CIFAR-10).
"""
import itertools
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
from sklearn.metrics import roc_auc_score

from ...registry import SCORES
from .base_score import BaseScore, ScoreInputError

#: OpenOOD v1.5's sweeps (``postprocessor_sweep`` of
#: ``configs/postprocessors/<name>.yml``), used by ``grid='openood'``.
OPENOOD_GRIDS: Dict[str, Dict[str, list]] = dict(
    react=dict(percentile=[90]),
    ash=dict(percentile=[65, 70, 75, 80, 85, 90, 95]),
    scale=dict(percentile=[65, 70, 75, 80, 85, 90, 95]),
    gen=dict(gamma=[0.01, 0.1, 0.5, 1, 2, 5, 10],
             M=[10, 50, 100, 200, 500, 1000]),
    vim=dict(dim=[256, 1000]),
    nnguide=dict(K=[100]),
    fdbd=dict(distance_as_normalizer=[True, False]))


def resolve_grid(score_type: str,
                 grid: Any) -> Dict[str, Sequence[Any]]:
    """A grid ``{argument: values}``; ``'openood'`` is
    :data:`OPENOOD_GRIDS` of ``score_type``."""
    if grid == 'openood':
        if score_type not in OPENOOD_GRIDS:
            raise ValueError(
                f"OpenOOD has no parameter sweep for '{score_type}'; give "
                f'the grid explicitly, e.g. grid=dict(<argument>=[...]), '
                f'(OpenOOD sweeps: {sorted(OPENOOD_GRIDS)})')
        return OPENOOD_GRIDS[score_type]
    if not isinstance(grid, Mapping) or not grid or not all(
            isinstance(v, (list, tuple)) and v for v in grid.values()):
        raise ValueError(
            f"grid of '{score_type}' must be 'openood' or a dict of "
            f'non-empty lists, got {grid!r}')
    return dict(grid)


def select_score(cfg: dict,
                 grid: Any,
                 train: Optional[Mapping[str, np.ndarray]],
                 val: Optional[Mapping[str, np.ndarray]],
                 ood_val: Optional[Mapping[str, np.ndarray]],
                 fc_weight: Optional[np.ndarray] = None,
                 fc_bias: Optional[np.ndarray] = None,
                 feature_key: str = 'feats'
                 ) -> Tuple[BaseScore, Dict[str, Any]]:
    """Fit every grid point, keep the one ranking ``val`` above
    ``ood_val`` best.

    Args:
        cfg (dict): The score config (``type`` and fixed arguments).
        grid (dict | str): ``{argument: [values]}`` or ``'openood'``.
        train (Mapping[str, np.ndarray], optional): The training bank.
        val (Mapping[str, np.ndarray]): Held-out known samples (``feats``,
            ``logits``, ``labels``), never the test set.
        ood_val (Mapping[str, np.ndarray]): An OOD validation source
            (``feats`` / ``logits``), never a test source.
        fc_weight (np.ndarray, optional): Final layer weight.
        fc_bias (np.ndarray, optional): Final layer bias.
        feature_key (str): The key of ``val`` / ``ood_val`` the score's
            ``feats`` are. Defaults to ``'feats'``.

    Returns:
        tuple[BaseScore, dict]: The fitted score of the chosen point, and
        the record ``dict(grid, metric='auroc', results=[{args, auroc}],
        chosen, val_size, ood_val_size)`` (also put in its ``fit_info``).
    """
    grid = resolve_grid(cfg['type'], grid)
    if val is None or ood_val is None:
        raise ScoreInputError(
            f"selecting the parameters of '{cfg['type']}' needs held-out "
            'known samples (val) and an OOD validation source (ood_val) to '
            'rank them against; without an OOD validation source there is '
            'nothing to choose by (the test set is never used): set both '
            '(OSRMetric.set_val(..., ood=...)) or drop the grid')
    names = list(grid)
    results = []
    best: Optional[Tuple[float, BaseScore, dict]] = None
    for values in itertools.product(*(grid[n] for n in names)):
        args = dict(zip(names, values))
        score = SCORES.build(dict(cfg, **args))
        try:
            if score.needs_fit:
                score.fit(train=train, val=val, fc_weight=fc_weight,
                          fc_bias=fc_bias)
        except ScoreInputError as error:
            # E.g. OpenOOD's ViM dim=1000 on 512-d features.
            results.append(dict(args=args, error=str(error)))
            continue
        known = score.score(val.get(feature_key), val.get('logits'))
        unknown = score.score(ood_val.get(feature_key), ood_val.get('logits'))
        auroc = float(roc_auc_score(
            np.r_[np.ones(known.size), np.zeros(unknown.size)],
            np.r_[known, unknown]))
        results.append(dict(args=args, auroc=auroc))
        if best is None or auroc > best[0]:
            best = (auroc, score, args)
    if best is None:
        raise ScoreInputError(
            f"no grid point of '{cfg['type']}' could be fitted: "
            f'{[r["error"] for r in results]}')
    record = dict(
        grid={k: list(v) for k, v in grid.items()},
        metric='auroc',
        results=results,
        chosen=best[2],
        val_size=int(next(iter(val.values())).shape[0]),
        ood_val_size=int(next(iter(ood_val.values())).shape[0]))
    best[1].fit_info['selection'] = record
    return best[1], record
