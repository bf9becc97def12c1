import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from gradmix_plugin.evaluation import (
    class_knn_scores,
    compute_osr_metrics,
    fpr_at_95_tpr,
    knn_scores,
    l2_normalize,
    logit_scores,
    oscr,
    oscr_arpl,
    oscr_curve,
)


def random_case(seed, size=60, num_levels=None, known_fraction=0.6):
    """Scores (tied to ``num_levels`` values if given), known mask, correct
    mask of known samples."""
    rng = np.random.default_rng(seed)
    if num_levels is None:
        scores = rng.normal(size=size)
    else:
        scores = rng.integers(0, num_levels, size).astype(float)
    is_known = rng.random(size) < known_fraction
    is_known[:2] = True, False  # both groups present
    correct = is_known & (rng.random(size) < 0.7)
    return scores, is_known, correct


CASES = [(seed, levels) for seed in range(6) for levels in (None, 2, 4, 9)]


def brute_force_oscr_points(scores, is_known, correct):
    """(FPR, CCR) at every threshold, O(n^2), plus (0, 0)."""
    points = [(0.0, 0.0)]
    for t in sorted(set(scores.tolist()), reverse=True):
        accepted = scores >= t
        points.append(((accepted & ~is_known).sum() / (~is_known).sum(),
                       (accepted & correct).sum() / is_known.sum()))
    return points


def brute_force_oscr_area(scores, is_known, correct):
    points = brute_force_oscr_points(scores, is_known, correct)
    return sum((x1 - x0) * (y0 + y1) / 2
               for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]))


def pairwise_oscr(scores, is_known, correct):
    """Correct known vs unknown pairs ranked right; a tie counts 1/2."""
    good = scores[correct][:, None]
    unknown = scores[~is_known][None, :]
    wins = (good > unknown).sum() + 0.5 * (good == unknown).sum()
    return wins / (is_known.sum() * (~is_known).sum())


def arpl_loop_oscr(known_scores, unknown_scores, known_correct):
    """A direct loop transcription of the ARPL ``compute_oscr`` algorithm."""
    k_target = np.concatenate(
        (known_correct.astype(float), np.zeros(len(unknown_scores))))
    u_target = np.concatenate(
        (np.zeros(len(known_scores)), np.ones(len(unknown_scores))))
    predict = np.concatenate((known_scores, unknown_scores))
    n = len(predict)
    ccr = [0.0] * (n + 2)
    fpr = [0.0] * (n + 2)
    idx = predict.argsort()
    s_k_target = k_target[idx]
    s_u_target = u_target[idx]
    for k in range(n - 1):
        ccr[k] = float(s_k_target[k + 1:].sum()) / len(known_scores)
        fpr[k] = float(s_u_target[k:].sum()) / len(unknown_scores)
    ccr[n], fpr[n] = 0.0, 0.0
    ccr[n + 1], fpr[n + 1] = 1.0, 1.0
    roc = sorted(zip(fpr, ccr), reverse=True)
    area = 0.0
    for j in range(n + 1):
        area += (roc[j][0] - roc[j + 1][0]) * (roc[j][1] + roc[j + 1][1]) / 2
    return area


def brute_force_fpr95(scores, is_known):
    best = 1.0
    for t in set(scores.tolist()):
        accepted = scores >= t
        if (accepted & is_known).sum() >= 0.95 * is_known.sum() - 1e-9:
            best = min(best, (accepted & ~is_known).sum() / (~is_known).sum())
    return best


@pytest.mark.parametrize('seed,levels', CASES)
def test_ranking_metrics_equal_sklearn(seed, levels):
    scores, is_known, _ = random_case(seed, num_levels=levels)
    metrics = compute_osr_metrics(scores, is_known)
    assert metrics['auroc'] == pytest.approx(roc_auc_score(is_known, scores))
    assert metrics['aupr_in'] == pytest.approx(
        average_precision_score(is_known, scores))
    assert metrics['aupr_out'] == pytest.approx(
        average_precision_score(~is_known, -scores))
    assert metrics['fpr95_known_pos'] == pytest.approx(
        brute_force_fpr95(scores, is_known))
    assert set(metrics) == {'auroc', 'aupr_in', 'aupr_out', 'fpr95_known_pos',
                            'fpr95_ood_pos'}


@pytest.mark.parametrize('seed,levels', CASES)
def test_oscr_equals_brute_force(seed, levels):
    scores, is_known, correct = random_case(seed, num_levels=levels)
    value = oscr(scores, is_known, correct)
    assert value == pytest.approx(
        brute_force_oscr_area(scores, is_known, correct))
    assert value == pytest.approx(pairwise_oscr(scores, is_known, correct))
    fpr, ccr, thresholds = oscr_curve(scores, is_known, correct)
    np.testing.assert_allclose(
        np.stack([fpr, ccr], axis=1),
        brute_force_oscr_points(scores, is_known, correct))
    assert thresholds[0] == np.inf
    assert (fpr[-1], ccr[-1]) == pytest.approx(
        (1.0, correct.sum() / is_known.sum()))


@pytest.mark.parametrize('seed,levels', CASES)
def test_oscr_arpl_equals_loop(seed, levels):
    scores, is_known, correct = random_case(seed, num_levels=levels)
    expected = arpl_loop_oscr(scores[is_known], scores[~is_known],
                              correct[is_known])
    assert oscr_arpl(scores, is_known, correct) == pytest.approx(
        expected, rel=1e-12, abs=1e-12)


def test_oscr_is_auroc_when_all_known_are_correct():
    scores, is_known, _ = random_case(0, num_levels=3)
    assert oscr(scores, is_known, is_known) == pytest.approx(
        roc_auc_score(is_known, scores))


def test_compute_osr_metrics_with_predictions():
    scores, is_known, correct = random_case(3, num_levels=5)
    labels = np.where(is_known, 2, -1)
    preds = np.where(correct, 2, 0)
    metrics = compute_osr_metrics(
        torch.from_numpy(scores), torch.from_numpy(is_known),
        torch.from_numpy(preds), torch.from_numpy(labels))
    assert metrics['accuracy'] == pytest.approx(correct.sum() / is_known.sum())
    assert metrics['oscr'] == pytest.approx(
        pairwise_oscr(scores, is_known, correct))
    assert metrics['oscr_arpl'] == pytest.approx(
        arpl_loop_oscr(scores[is_known], scores[~is_known],
                       correct[is_known]))
    assert metrics['oscr'] <= metrics['accuracy']


def test_fpr95_threshold_convention():
    # 20 knowns: the 19th highest known score is the largest threshold with
    # TPR >= 95%; the unknowns at or above it are false positives.
    known = np.arange(20, dtype=float)  # 0..19, threshold = 1.0
    unknown = np.array([0.5, 1.0, 3.0, 25.0])
    scores = np.concatenate([known, unknown])
    is_known = np.arange(24) < 20
    assert fpr_at_95_tpr(scores, is_known) == pytest.approx(3 / 4)


def test_degenerate_inputs():
    with pytest.raises(ValueError, match='empty'):
        compute_osr_metrics(np.array([]), np.array([], dtype=bool))
    with pytest.raises(ValueError, match='2 NaN or inf'):
        compute_osr_metrics(
            np.array([0.1, np.nan, np.inf]), np.array([True, False, True]))
    with pytest.raises(ValueError, match='3 entries but is_known has 2'):
        compute_osr_metrics(np.zeros(3), np.array([True, False]))
    with pytest.raises(ValueError, match='both preds and labels'):
        compute_osr_metrics(np.zeros(2), np.array([True, False]), preds=[0, 0])
    with pytest.raises(ValueError, match='is_known must be boolean'):
        compute_osr_metrics(np.zeros(2), np.array([2, 0]))
    with pytest.raises(ValueError, match='negative label'):
        compute_osr_metrics(
            np.zeros(2), np.array([True, False]), [0, 0], [-1, -1])
    with pytest.warns(UserWarning, match='0 unknown'):
        metrics = compute_osr_metrics(
            np.array([0.3, 0.2]), np.array([True, True]), [1, 0], [1, 1])
    assert np.isnan(metrics['auroc']) and np.isnan(metrics['oscr'])
    assert metrics['accuracy'] == 0.5
    with pytest.warns(UserWarning, match='0 known'):
        metrics = compute_osr_metrics(np.array([0.3]), np.array([False]))
    assert all(np.isnan(v) for v in metrics.values())
    with pytest.raises(ValueError, match='known and unknown'):
        oscr(np.array([0.3, 0.2]), np.array([True, True]), [True, True])


def brute_force_similarities(query, bank):
    def normalize(x):
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        return x / np.maximum(norms, 1e-12)

    return normalize(query.astype(np.float64)) @ normalize(
        bank.astype(np.float64)).T


def test_l2_normalize_keeps_zero_rows():
    x = np.array([[3.0, 4.0], [0.0, 0.0]])
    np.testing.assert_allclose(l2_normalize(x), [[0.6, 0.8], [0.0, 0.0]])
    assert l2_normalize(torch.ones(2, 3)).dtype == np.float32


@pytest.mark.parametrize('k', [1, 5])
def test_knn_scores_equal_brute_force(k):
    rng = np.random.default_rng(k)
    query = rng.normal(size=(37, 8)).astype(np.float32)
    query[3] = 0.0  # zero vector: cosine 0 to everything, no NaN
    bank = rng.normal(size=(50, 8)).astype(np.float32)
    scores = knn_scores(query, torch.from_numpy(bank), k=k, chunk_size=10)
    similarities = brute_force_similarities(query, bank)
    kth = -np.sort(-similarities, axis=1)[:, k - 1]
    np.testing.assert_allclose(scores, -(2 - 2 * kth), atol=1e-5)
    # For unit queries also minus the squared distance to the k-th
    # neighbour.
    distances = np.linalg.norm(
        l2_normalize(query)[:, None] - l2_normalize(bank)[None], axis=2)
    unit = np.arange(len(query)) != 3
    np.testing.assert_allclose(
        scores[unit], -np.sort(distances, axis=1)[unit, k - 1]**2, atol=1e-5)
    assert scores[3] == pytest.approx(-2.0)


def brute_force_class_knn(query, bank, bank_labels, num_classes, k):
    similarities = brute_force_similarities(query, bank)
    sums = np.stack([
        np.sort(similarities[:, bank_labels == c], axis=1)[:, -k:].sum(1)
        for c in range(num_classes)
    ], axis=1)
    positive = np.clip(sums, 0, None)
    totals = positive.sum(1, keepdims=True)
    probs = np.where(totals > 0, positive / np.where(totals > 0, totals, 1),
                     1 / num_classes)
    return probs.max(1), sums.argmax(1)


def test_class_knn_scores_equal_brute_force():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 16)) * 3
    bank_labels = rng.integers(0, 4, 80)
    bank_labels[:4] = np.arange(4)
    bank = centers[bank_labels] + rng.normal(size=(80, 16))
    query = np.concatenate([
        centers[rng.integers(0, 4, 30)] + rng.normal(size=(30, 16)),
        rng.normal(size=(20, 16)) * 3
    ])
    scores, preds = class_knn_scores(
        query, bank, bank_labels, num_classes=4, k=3, chunk_size=16)
    expected_scores, expected_preds = brute_force_class_knn(
        query, bank, bank_labels, 4, 3)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)
    np.testing.assert_array_equal(preds, expected_preds)
    assert preds.dtype == np.int64 and scores.dtype == np.float64


def test_class_knn_negative_similarities():
    # Bank vectors of class 0 along +x and of class 1 along +y.
    bank = np.array([[1, 0], [1, 0.1], [0, 1], [0.1, 1]], dtype=np.float32)
    labels = np.array([0, 0, 1, 1])
    # Query 0: positive to class 0, negative to class 1 -> p = (1, 0).
    # Query 1: negative to both classes -> uniform, score 1 / 2.
    query = np.array([[1, -0.2], [-1, -1]], dtype=np.float32)
    scores, preds = class_knn_scores(query, bank, labels, 2, k=2)
    np.testing.assert_allclose(scores, [1.0, 0.5])
    expected_scores, expected_preds = brute_force_class_knn(
        query, bank, labels, 2, 2)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-6)
    np.testing.assert_array_equal(preds, expected_preds)
    assert np.isfinite(scores).all()


def test_knn_bad_inputs():
    bank = np.ones((4, 3))
    with pytest.raises(ValueError, match='classes \\[1\\] have \\[1\\]'):
        class_knn_scores(np.ones((2, 3)), bank, [0, 0, 0, 1], 2, k=2)
    with pytest.raises(ValueError, match='classes \\[2\\] have \\[0\\]'):
        class_knn_scores(np.ones((2, 3)), bank, [0, 0, 1, 1], 3, k=2)
    with pytest.raises(ValueError, match='must lie in \\[0, 2\\)'):
        class_knn_scores(np.ones((2, 3)), bank, [0, 0, 1, 5], 2, k=1)
    with pytest.raises(ValueError, match='k=5 is larger than the bank'):
        knn_scores(np.ones((2, 3)), bank, k=5)
    with pytest.raises(ValueError, match='query dimension 2 != bank'):
        knn_scores(np.ones((2, 2)), bank, k=1)
    with pytest.raises(ValueError, match='1 rows with NaN'):
        knn_scores(np.array([[np.nan, 0, 0], [1, 0, 0]]), bank, k=1)
    with pytest.raises(ValueError, match='non-empty'):
        knn_scores(np.ones((0, 3)), bank, k=1)


def test_logit_scores():
    logits = torch.randn(10, 5, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(
        logit_scores(logits, 'msp'),
        torch.softmax(logits.double(), 1).max(1).values.numpy())
    np.testing.assert_allclose(
        logit_scores(logits, 'mls'), logits.max(1).values.numpy())
    np.testing.assert_allclose(
        logit_scores(logits.numpy(), 'energy', temperature=2.0),
        2.0 * torch.logsumexp(logits.double() / 2.0, 1).numpy())
    with pytest.raises(ValueError, match="got 'odin'"):
        logit_scores(logits, 'odin')
