"""OOD-detection parts of the functional API: the OOD-positive FPR@95, the
OpenOOD v1.5 values and the Mahalanobis score, against brute force."""
import numpy as np
import pytest
from sklearn.covariance import LedoitWolf

from gradmix_plugin.evaluation import (
    compute_osr_metrics,
    fit_tied_gaussian,
    mahalanobis_scores,
    openood_metrics,
)

CASES = [(seed, levels) for seed in range(6) for levels in (None, 2, 3, 7)]


def random_case(seed, size=80, num_levels=None):
    """Scores (tied to ``num_levels`` values if given), known mask, labels
    and predictions of 3 classes."""
    rng = np.random.default_rng(seed)
    is_known = rng.random(size) < 0.6
    is_known[:2] = True, False
    if num_levels is None:
        scores = rng.normal(size=size) + is_known
    else:
        scores = (rng.integers(0, num_levels, size) + is_known).astype(float)
    labels = np.where(is_known, rng.integers(0, 3, size), -1)
    preds = np.where(rng.random(size) < 0.7, labels, 0)
    return scores, is_known, labels, preds


def brute_force_fpr95_ood_pos(scores, is_known):
    """Flag ``score <= t`` as OOD for every t; among thresholds flagging at
    least 95% of the OOD samples, the smallest fraction of ID flagged."""
    best = 1.0
    for t in set(scores.tolist()):
        flagged = scores <= t
        if 100 * (flagged & ~is_known).sum() >= 95 * (~is_known).sum():
            best = min(best, (flagged & is_known).sum() / is_known.sum())
    return best


def roc_counts(positive, values):
    """(false, true positives) after each unique value, high to low."""
    counts = []
    for t in sorted(set(values.tolist()), reverse=True):
        hit = values >= t
        counts.append(((hit & ~positive).sum(), (hit & positive).sum()))
    return np.array(counts)


def drop_collinear(counts):
    """scikit-learn's ``drop_intermediate``: keep the ends and the points
    where the curve bends (second differences of the counts not both 0)."""
    bends = np.any(np.diff(counts, 2, axis=0) != 0, axis=1)
    return counts[np.concatenate(([True], bends, [True]))]


def trapezoid(x, y):
    order = np.argsort(x, kind='stable')
    return float(np.trapezoid(y[order], x[order]))


def pr_area(positive, values):
    """Trapezoidal area under precision(recall) at every unique value, plus
    the (recall 0, precision 1) end point."""
    recall, precision = [0.0], [1.0]
    for t in sorted(set(values.tolist()), reverse=True):
        hit = values >= t
        recall.append((hit & positive).sum() / positive.sum())
        precision.append((hit & positive).sum() / hit.sum())
    return trapezoid(np.array(recall), np.array(precision))


def openood_oracle(conf, label, pred):
    """OpenOOD v1.5 ``compute_all_metrics``, re-implemented by brute force:
    OOD (label -1) is positive and ranked by -conf."""
    ood = label == -1
    counts = drop_collinear(roc_counts(ood, -conf))
    points = np.concatenate(([[0.0, 0.0]], counts / [(~ood).sum(),
                                                     ood.sum()]))
    fpr95 = points[np.argmax(points[:, 1] >= 0.95), 0]
    return dict(
        openood_fpr95=fpr95,
        openood_auroc=trapezoid(points[:, 0], points[:, 1]),
        openood_aupr_in=pr_area(~ood, conf),
        openood_aupr_out=pr_area(ood, -conf),
        openood_acc=np.mean(pred[~ood] == label[~ood]))


@pytest.mark.parametrize('seed,levels', CASES)
def test_both_fpr95_conventions_on_tied_scores(seed, levels):
    scores, is_known, _, _ = random_case(seed, num_levels=levels)
    metrics = compute_osr_metrics(scores, is_known)
    assert metrics['fpr95_ood_pos'] == pytest.approx(
        brute_force_fpr95_ood_pos(scores, is_known))
    # The known-positive convention is another number.
    flagged_known = [
        (scores >= t)[~is_known].mean() for t in set(scores.tolist())
        if 100 * (scores >= t)[is_known].sum() >= 95 * is_known.sum()
    ]
    assert metrics['fpr95_known_pos'] == pytest.approx(min(flagged_known))


def test_fpr95_conventions_differ():
    # 20 ID scores 0..19 and 4 OOD scores: at 95% TPR of ID (threshold 1)
    # 3 OOD are accepted; detecting 95% of OOD (all 4, threshold <= 25)
    # flags every ID sample.
    scores = np.concatenate([np.arange(20.0), [0.5, 1.0, 3.0, 25.0]])
    is_known = np.arange(24) < 20
    metrics = compute_osr_metrics(scores, is_known)
    assert metrics['fpr95_known_pos'] == pytest.approx(3 / 4)
    assert metrics['fpr95_ood_pos'] == pytest.approx(1.0)


@pytest.mark.parametrize('seed,levels', CASES)
def test_openood_values_equal_their_formulas(seed, levels):
    scores, is_known, labels, preds = random_case(seed, num_levels=levels)
    metrics = compute_osr_metrics(scores, is_known, preds, labels,
                                  openood_compat=True)
    expected = openood_oracle(scores, labels, preds)
    for key, value in expected.items():
        assert metrics[key] == pytest.approx(value, abs=1e-12), key
    assert metrics['openood_auroc'] == pytest.approx(metrics['auroc'])
    assert metrics['openood_acc'] == metrics['accuracy']
    if levels is None:  # continuous scores: the FPR@95 conventions agree
        assert metrics['openood_fpr95'] == metrics['fpr95_ood_pos']


def test_openood_fpr95_on_ties_and_aupr_is_not_average_precision():
    # 20 tie groups of one ID and one OOD sample: collinear ROC points are
    # dropped (as OpenOOD's roc_curve call does), so the first point with
    # TPR >= 95% is the last one; the tie-aware value stops at 19 groups.
    scores = np.repeat(np.arange(20.0), 2)
    is_known = np.tile([True, False], 20)
    metrics = compute_osr_metrics(scores, is_known, openood_compat=True)
    assert metrics['fpr95_ood_pos'] == pytest.approx(19 / 20)
    assert metrics['openood_fpr95'] == pytest.approx(1.0)
    assert metrics['openood_auroc'] == pytest.approx(0.5)
    # Trapezoids from (recall 0, precision 1) vs the step sum of AP.
    assert metrics['aupr_in'] == pytest.approx(0.5)
    assert metrics['openood_aupr_in'] == pytest.approx(0.5 + 0.5 / 20 / 2)
    assert set(openood_metrics(scores, is_known)) == {
        'openood_fpr95', 'openood_auroc', 'openood_aupr_in',
        'openood_aupr_out'}
    with pytest.raises(ValueError, match='20 known and 0 unknown'):
        openood_metrics(scores[is_known], is_known[is_known])
    # Without unknown samples compute_osr_metrics warns and gives NaN,
    # except the accuracies.
    with pytest.warns(UserWarning, match='0 unknown'):
        metrics = compute_osr_metrics(
            scores[:3], np.ones(3, bool), [0, 1, 1], [0, 1, 0],
            openood_compat=True)
    assert np.isnan(metrics['openood_fpr95'])
    assert np.isnan(metrics['fpr95_ood_pos'])
    assert metrics['openood_acc'] == metrics['accuracy'] == pytest.approx(
        2 / 3)


def make_bank(seed, num=120, dim=6, num_classes=3):
    rng = np.random.default_rng(seed)
    labels = np.arange(num) % num_classes
    mixing = rng.normal(size=(dim, dim))
    bank = rng.normal(size=(num_classes, dim))[labels] * 3 + rng.normal(
        size=(num, dim)) @ mixing
    query = rng.normal(size=(25, dim)) * 3
    return query, bank, labels


def brute_force_mahalanobis(query, bank, labels, covariance=None):
    classes = np.unique(labels)
    means = np.stack([bank[labels == c].mean(0) for c in classes])
    if covariance is None:
        covariance = sum(
            (bank[labels == c] - means[i]).T @ (bank[labels == c] - means[i])
            for i, c in enumerate(classes)) / len(bank)
    precision = np.linalg.inv(covariance)
    distances = np.array([[(q - m) @ precision @ (q - m) for m in means]
                          for q in query])
    return -distances.min(1), classes[distances.argmin(1)]


def test_mahalanobis_equals_brute_force():
    query, bank, labels = make_bank(0)
    labels = labels * 2 + 1  # class ids need not be 0..C-1
    scores, preds = mahalanobis_scores(query, bank, labels)
    expected_scores, expected_preds = brute_force_mahalanobis(
        query, bank, labels)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-9)
    np.testing.assert_array_equal(preds, expected_preds)
    # A bank vector scores higher than a far-away query.
    assert mahalanobis_scores(bank[:1], bank, labels)[0] > scores.min()


def test_mahalanobis_shrinks_an_ill_conditioned_covariance():
    query, bank, labels = make_bank(1)
    bank[:, -1] = bank[:, 0]  # rank-deficient covariance
    query[:, -1] = query[:, 0] + 1.0
    with pytest.warns(UserWarning, match='Ledoit-Wolf'):
        scores, preds = mahalanobis_scores(query, bank, labels)
    assert np.isfinite(scores).all()
    means = np.stack([bank[labels == c].mean(0) for c in range(3)])
    shrunk = LedoitWolf(assume_centered=True).fit(
        bank - means[labels]).covariance_
    expected_scores, expected_preds = brute_force_mahalanobis(
        query, bank, labels, shrunk)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-7)
    np.testing.assert_array_equal(preds, expected_preds)
    # A fixed coefficient: (1 - a) S + a tr(S) / D I.
    _, bank, labels = make_bank(2)
    _, _, empirical = fit_tied_gaussian(bank, labels, shrinkage=0.0)
    _, _, ridge = fit_tied_gaussian(bank, labels, shrinkage=0.25)
    np.testing.assert_allclose(
        ridge, 0.75 * empirical + 0.25 * np.trace(empirical) / 6 * np.eye(6))


def test_mahalanobis_bad_inputs():
    query, bank, labels = make_bank(2)
    with pytest.raises(ValueError, match='covariance of the bank is singular'):
        bad = bank.copy()
        bad[:, 1] = bad[:, 0]
        fit_tied_gaussian(bad, labels, shrinkage=0.0)
    with pytest.raises(ValueError, match='every bank vector equals'), \
            pytest.warns(UserWarning, match='condition number inf'):
        fit_tied_gaussian(np.ones((6, 3)), np.arange(6) % 2)
    with pytest.raises(ValueError, match="got 'oas'"):
        fit_tied_gaussian(bank, labels, shrinkage='oas')
    with pytest.raises(ValueError, match='got 1.5'):
        fit_tied_gaussian(bank, labels, shrinkage=1.5)
    with pytest.raises(ValueError, match='integers >= 0'):
        fit_tied_gaussian(bank, -labels - 1)
    with pytest.raises(ValueError, match='query dimension 5 != bank'):
        mahalanobis_scores(query[:, :5], bank, labels)
