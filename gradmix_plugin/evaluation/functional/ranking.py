"""Ranking and open-set classification metrics of one score.

A higher score means "more likely a known class"; known samples are the
positive class of every ranking metric except ``fpr95_ood_pos`` (and the
OpenOOD-compatible values of :mod:`.openood`), where unknown (OOD) samples
are the positives. Values are fractions in ``[0, 1]``.
"""
import warnings
from typing import Dict, Optional, Tuple

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from ._utils import ArrayLike, _check_mask, _check_scores, _correct_known
from .openood import OPENOOD_METRICS, openood_metrics

#: Keys returned by :func:`compute_osr_metrics` without predictions.
RANKING_METRICS = ('auroc', 'aupr_in', 'aupr_out', 'fpr95_known_pos',
                   'fpr95_ood_pos')
#: Keys added by :func:`compute_osr_metrics` when predictions are given.
CLASSIFICATION_METRICS = ('accuracy', 'oscr', 'oscr_arpl')


def _threshold_counts(scores: np.ndarray, is_known: np.ndarray,
                      correct: np.ndarray) -> Dict[str, np.ndarray]:
    """Counts of accepted samples at every unique score, high to low.

    A sample is accepted at threshold ``t`` when ``score >= t``. Entry
    ``i`` refers to the ``i``-th largest unique score; O(n log n).
    """
    order = np.argsort(scores, kind='stable')[::-1]
    sorted_scores = scores[order]
    group_ends = np.append(
        np.flatnonzero(sorted_scores[:-1] != sorted_scores[1:]),
        scores.size - 1)
    return dict(
        thresholds=sorted_scores[group_ends],
        known=np.cumsum(is_known[order])[group_ends],
        correct=np.cumsum(correct[order])[group_ends],
        unknown=np.cumsum(~is_known[order])[group_ends])


def oscr_curve(scores: ArrayLike, is_known: ArrayLike, correct: ArrayLike
               ) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Open-set classification rate curve (Dhamija et al. 2018).

    Note:
        For every unique score ``t`` (high to low),
        ``CCR(t)`` is the fraction of known samples that are correctly
        classified and have ``score >= t``, and ``FPR(t)`` is the fraction
        of unknown samples with ``score >= t``. The curve starts at
        ``(0, 0)`` (threshold ``+inf``) and ends at ``(1, accuracy)``
        (the smallest score).

    Args:
        scores (np.ndarray | torch.Tensor): Scores ``(N, )``.
        is_known (np.ndarray | torch.Tensor): Known mask ``(N, )``.
        correct (np.ndarray | torch.Tensor): Whether each sample is a
            correctly classified known sample ``(N, )``.

    Returns:
        tuple[np.ndarray]: ``fpr``, ``ccr`` and ``thresholds`` (the first
        threshold is ``+inf``).
    """
    scores, is_known = _check_scores(scores, is_known)
    correct = _check_mask(correct, scores.size, 'correct') & is_known
    num_known, num_unknown = is_known.sum(), (~is_known).sum()
    if num_known == 0 or num_unknown == 0:
        raise ValueError(
            f'the OSCR curve needs known and unknown samples, got '
            f'{num_known} known and {num_unknown} unknown')
    counts = _threshold_counts(scores, is_known, correct)
    fpr = np.concatenate(([0.0], counts['unknown'] / num_unknown))
    ccr = np.concatenate(([0.0], counts['correct'] / num_known))
    thresholds = np.concatenate(([np.inf], counts['thresholds']))
    return fpr, ccr, thresholds


def oscr(scores: ArrayLike, is_known: ArrayLike, correct: ArrayLike) -> float:
    """Area under :func:`oscr_curve` by the trapezoidal rule.

    Ties are one point of the curve, so a tie between an unknown and a
    correctly classified known sample counts one half, as in AUROC. When
    every known sample is correct, OSCR equals AUROC; in general it is at
    most the closed-set accuracy.

    Args:
        scores (np.ndarray | torch.Tensor): Scores ``(N, )``.
        is_known (np.ndarray | torch.Tensor): Known mask ``(N, )``.
        correct (np.ndarray | torch.Tensor): Correctly classified known
            samples ``(N, )``.

    Returns:
        float: OSCR in ``[0, 1]``.
    """
    fpr, ccr, _ = oscr_curve(scores, is_known, correct)
    return float(np.trapezoid(ccr, fpr))


def oscr_arpl(scores: ArrayLike, is_known: ArrayLike,
              correct: ArrayLike) -> float:
    """OSCR as computed by the ``compute_oscr`` loop of ARPL / Vaze et al.

    Reproduces, vectorised, the value of ``compute_oscr`` in
    `ARPL <https://github.com/iCGY96/ARPL>`_ and
    `osr_closed_set_all_you_need
    <https://github.com/sgvaze/osr_closed_set_all_you_need>`_ with
    ``x1 = scores[is_known]`` and ``x2 = scores[~is_known]`` (input order
    kept). That loop sorts all scores ascending with ``np.argsort`` and, for
    cut ``i``, counts correct known samples strictly after position ``i``
    but unknown samples from position ``i`` on. Tied scores are therefore
    split by their position in the sort, which makes the value depend on
    the input order; prefer :func:`oscr`, which treats ties consistently.

    Args:
        scores (np.ndarray | torch.Tensor): Scores ``(N, )``.
        is_known (np.ndarray | torch.Tensor): Known mask ``(N, )``.
        correct (np.ndarray | torch.Tensor): Correctly classified known
            samples ``(N, )``.

    Returns:
        float: the ARPL OSCR value in ``[0, 1]``.
    """
    scores, is_known = _check_scores(scores, is_known)
    correct = _check_mask(correct, scores.size, 'correct')
    num_known, num_unknown = is_known.sum(), (~is_known).sum()
    if num_known == 0 or num_unknown == 0:
        raise ValueError(
            f'oscr_arpl needs known and unknown samples, got {num_known} '
            f'known and {num_unknown} unknown')
    predict = np.concatenate((scores[is_known], scores[~is_known]))
    known_target = np.concatenate(
        (correct[is_known].astype(np.float64), np.zeros(num_unknown)))
    unknown_target = np.concatenate((np.zeros(num_known),
                                     np.ones(num_unknown)))
    order = predict.argsort()
    n = predict.size
    # suffix[i] = sum of the sorted targets from position i on.
    known_suffix = np.cumsum(known_target[order][::-1])[::-1]
    unknown_suffix = np.cumsum(unknown_target[order][::-1])[::-1]

    ccr = np.zeros(n + 2)
    fpr = np.zeros(n + 2)
    ccr[:n - 1] = known_suffix[1:] / num_known
    fpr[:n - 1] = unknown_suffix[:n - 1] / num_unknown
    ccr[n + 1] = fpr[n + 1] = 1.0
    # Points sorted by (FPR, CCR) descending, as the loop's sorted(...).
    points = np.lexsort((ccr, fpr))[::-1]
    fpr, ccr = fpr[points], ccr[points]
    return float(np.sum((fpr[:-1] - fpr[1:]) * (ccr[:-1] + ccr[1:]) / 2.0))


def fpr_at_95_tpr(scores: ArrayLike, is_known: ArrayLike) -> float:
    """False-positive rate on unknowns at 95% true-positive rate on knowns.

    Note:
        Known samples are the positives. Among the thresholds ``t`` (the
        unique scores, a sample is accepted when ``score >= t``) that accept
        at least 95% of the known samples (``100 * accepted_known >= 95 *
        num_known``, in integers), take the largest; the result is the
        fraction of unknown samples accepted there. This is the smallest
        FPR reaching TPR >= 95%, and equals ``fpr[argmax(tpr >= 0.95)]`` of
        ``sklearn.metrics.roc_curve(is_known, scores,
        drop_intermediate=False)`` up to float rounding of ``tpr``.
        Tied samples are accepted or rejected together. With the roles
        swapped, ``fpr_at_95_tpr(-scores, ~is_known)`` is the OOD-positive
        convention ``fpr95_ood_pos``: the fraction of known samples flagged
        unknown when 95% of the unknowns are.

    Args:
        scores (np.ndarray | torch.Tensor): Scores ``(N, )``.
        is_known (np.ndarray | torch.Tensor): Known mask ``(N, )``.

    Returns:
        float: FPR in ``[0, 1]``; lower is better.
    """
    scores, is_known = _check_scores(scores, is_known)
    num_known, num_unknown = is_known.sum(), (~is_known).sum()
    if num_known == 0 or num_unknown == 0:
        raise ValueError(
            f'FPR@95 needs known and unknown samples, got {num_known} known '
            f'and {num_unknown} unknown')
    counts = _threshold_counts(scores, is_known, is_known)
    first = np.argmax(100 * counts['known'] >= 95 * num_known)
    return float(counts['unknown'][first] / num_unknown)


def compute_osr_metrics(scores: ArrayLike,
                        is_known: ArrayLike,
                        preds: Optional[ArrayLike] = None,
                        labels: Optional[ArrayLike] = None,
                        openood_compat: bool = False) -> Dict[str, float]:
    """All open-set metrics of one score, as fractions in ``[0, 1]``.

    Keys:

    - ``auroc``: area under the ROC curve, known = positive,
      ``sklearn.metrics.roc_auc_score`` (ties count one half).
    - ``aupr_in``: average precision with known samples positive
      (``sklearn.metrics.average_precision_score(is_known, scores)``).
    - ``aupr_out``: average precision with unknown samples positive and the
      negated score (``average_precision_score(~is_known, -scores)``).
    - ``fpr95_known_pos``: FPR of the unknowns at 95% TPR of the knowns
      (ODIN / ARPL convention), see :func:`fpr_at_95_tpr`.
    - ``fpr95_ood_pos``: the fraction of known samples flagged unknown at
      95% TPR of the unknowns (OpenOOD v1.5 convention, unknown =
      positive), ``fpr_at_95_tpr(-scores, ~is_known)``.
    - ``accuracy`` (needs ``preds`` and ``labels``): closed-set accuracy on
      the known samples.
    - ``oscr`` (needs ``preds`` and ``labels``): see :func:`oscr`.
    - ``oscr_arpl`` (needs ``preds`` and ``labels``): see
      :func:`oscr_arpl`.
    - with ``openood_compat=True``, also the keys of
      :func:`openood_metrics` (``openood_fpr95``, ``openood_auroc``,
      ``openood_aupr_in``, ``openood_aupr_out`` and, with predictions,
      ``openood_acc``).

    If there are no known or no unknown samples the ranking metrics are
    undefined: they are NaN and a ``UserWarning`` is raised (``accuracy`` and
    ``openood_acc`` are still computed when there are known samples).

    Args:
        scores (np.ndarray | torch.Tensor): Scores ``(N, )``, higher = more
            known. NaN or inf raise ``ValueError``.
        is_known (np.ndarray | torch.Tensor): Boolean (or 0/1) known mask
            ``(N, )``.
        preds (np.ndarray | torch.Tensor, optional): Closed-set predictions
            ``(N, )``. Defaults to None.
        labels (np.ndarray | torch.Tensor, optional): Ground-truth classes
            ``(N, )``; only the known samples' labels are used.
            Defaults to None.
        openood_compat (bool): Also report OpenOOD v1.5's definitions.
            Defaults to False.

    Returns:
        dict[str, float]: The metrics.
    """
    scores, is_known = _check_scores(scores, is_known)
    if (preds is None) != (labels is None):
        raise ValueError('pass both preds and labels, or neither')
    with_predictions = preds is not None
    correct = (
        _correct_known(is_known, preds, labels) if with_predictions else None)

    num_known = int(is_known.sum())
    num_unknown = is_known.size - num_known
    names = RANKING_METRICS + (
        CLASSIFICATION_METRICS if with_predictions else ())
    if openood_compat:
        names += OPENOOD_METRICS if with_predictions else OPENOOD_METRICS[:-1]
    metrics = dict.fromkeys(names, float('nan'))
    if with_predictions and num_known:
        metrics['accuracy'] = float(correct.sum() / num_known)
        if openood_compat:
            metrics['openood_acc'] = metrics['accuracy']
    if num_known == 0 or num_unknown == 0:
        warnings.warn(
            f'open-set metrics need known and unknown samples, got '
            f'{num_known} known and {num_unknown} unknown; AUROC, AUPR, '
            'FPR@95 and OSCR are NaN',
            stacklevel=2)
        return metrics

    metrics['auroc'] = float(roc_auc_score(is_known, scores))
    metrics['aupr_in'] = float(average_precision_score(is_known, scores))
    metrics['aupr_out'] = float(average_precision_score(~is_known, -scores))
    metrics['fpr95_known_pos'] = fpr_at_95_tpr(scores, is_known)
    metrics['fpr95_ood_pos'] = fpr_at_95_tpr(-scores, ~is_known)
    if with_predictions:
        metrics['oscr'] = oscr(scores, is_known, correct)
        metrics['oscr_arpl'] = oscr_arpl(scores, is_known, correct)
    if openood_compat:
        metrics.update(openood_metrics(scores, is_known, preds, labels))
    return metrics
