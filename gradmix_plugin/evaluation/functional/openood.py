"""Metrics as OpenOOD v1.5 computes them."""
from typing import Dict, Optional

import numpy as np
from sklearn.metrics import auc, precision_recall_curve, roc_curve

from ._utils import ArrayLike, _check_scores, _correct_known

#: Keys of :func:`openood_metrics` (``openood_acc`` needs predictions).
OPENOOD_METRICS = ('openood_fpr95', 'openood_auroc', 'openood_aupr_in',
                   'openood_aupr_out', 'openood_acc')


def openood_metrics(scores: ArrayLike,
                    is_known: ArrayLike,
                    preds: Optional[ArrayLike] = None,
                    labels: Optional[ArrayLike] = None) -> Dict[str, float]:
    """FPR@95, AUROC, AUPR-In, AUPR-Out and ACC as OpenOOD v1.5 defines them.

    `OpenOOD <https://github.com/Jingkang50/OpenOOD>`_ v1.5
    (``openood/evaluators/metrics.py``, ``auc_and_fpr_recall`` and ``acc``)
    treats OOD (unknown) samples as the positives and ranks them by the
    negated score. Reproduced here with the same scikit-learn calls:

    - ``openood_fpr95``: ``roc_curve(is_unknown, -scores)`` with its default
      ``drop_intermediate=True``, then the FPR at the first ROC point whose
      TPR is ``>= 0.95``, i.e. the fraction of known samples flagged
      unknown when 95% of the unknowns are. On continuous scores this equals
      ``fpr95_ood_pos``; with ties, ``drop_intermediate`` can drop the
      collinear points of tied groups so that the first point reaching 95%
      lies further along the curve, and the value can be higher.
    - ``openood_auroc``: ``auc(fpr, tpr)`` of that curve (trapezoids), equal
      to ``auroc`` up to float rounding.
    - ``openood_aupr_in``: ``auc(recall, precision)`` of
      ``precision_recall_curve(is_known, scores)``: the trapezoidal area
      under the PR curve (whose last point is recall 0, precision 1), not
      average precision.
    - ``openood_aupr_out``: the same with ``(is_unknown, -scores)``.
    - ``openood_acc`` (needs ``preds`` and ``labels``): accuracy on the
      known samples, the same as ``accuracy``.

    Args:
        scores (np.ndarray | torch.Tensor): Scores ``(N, )``, higher = more
            known (OpenOOD's ``conf``).
        is_known (np.ndarray | torch.Tensor): Known mask ``(N, )``; OpenOOD's
            ``label == -1`` is ``~is_known``.
        preds (np.ndarray | torch.Tensor, optional): Closed-set predictions
            ``(N, )``. Defaults to None.
        labels (np.ndarray | torch.Tensor, optional): Ground-truth classes
            ``(N, )``. Defaults to None.

    Returns:
        dict[str, float]: The values as fractions (OpenOOD's tables show
        them x 100).
    """
    scores, is_known = _check_scores(scores, is_known)
    if (preds is None) != (labels is None):
        raise ValueError('pass both preds and labels, or neither')
    num_known = int(is_known.sum())
    if num_known == 0 or num_known == is_known.size:
        raise ValueError(
            f'OpenOOD metrics need known and unknown samples, got '
            f'{num_known} known and {is_known.size - num_known} unknown')
    is_unknown = (~is_known).astype(np.int64)
    fpr, tpr, _ = roc_curve(is_unknown, -scores)
    precision_in, recall_in, _ = precision_recall_curve(
        is_known.astype(np.int64), scores)
    precision_out, recall_out, _ = precision_recall_curve(is_unknown, -scores)
    metrics = dict(
        openood_fpr95=float(fpr[np.argmax(tpr >= 0.95)]),
        openood_auroc=float(auc(fpr, tpr)),
        openood_aupr_in=float(auc(recall_in, precision_in)),
        openood_aupr_out=float(auc(recall_out, precision_out)))
    if preds is not None:
        correct = _correct_known(is_known, preds, labels)
        metrics['openood_acc'] = float(correct.sum() / num_known)
    return metrics
