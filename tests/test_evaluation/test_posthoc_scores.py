"""Every post-hoc score against an independent oracle written from
OpenOOD v1.5's postprocessor (openood/postprocessors/*.py, in torch per
batch as there, or with the same NumPy / scikit-learn calls) or from the
paper, values to 1e-5 relative, fitted statistics included."""
import faiss
import numpy as np
import pytest
import torch
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.covariance import EmpiricalCovariance
from sklearn.metrics import pairwise_distances_argmin_min

from gradmix_plugin.evaluation.scores import POSTHOC_SCORES, ScoreInputError
from gradmix_plugin.registry import SCORES

RTOL = 1e-5
C, D = 5, 32


@pytest.fixture(scope='module')
def data():
    """ReLU features of known classes around centres, a linear layer."""
    rng = np.random.default_rng(7)
    centres = np.abs(rng.normal(size=(C, D))) * 1.5

    def split(n, known=True):
        labels = rng.integers(0, C, n)
        x = (centres[labels] if known else np.abs(
            rng.normal(size=(n, D)))) + rng.normal(size=(n, D))
        return np.maximum(x, 0).astype(np.float32), labels

    train_feats, train_labels = split(400)
    val_feats, val_labels = split(120)
    known, known_labels = split(60)
    unknown, _ = split(40, known=False)
    weight = (centres / np.linalg.norm(centres, axis=1, keepdims=True) +
              0.1 * rng.normal(size=(C, D))).astype(np.float32)
    bias = (0.2 * rng.normal(size=C)).astype(np.float32)
    test = np.concatenate([known, unknown])

    def logits(x):
        return (x.astype(np.float64) @ weight.T + bias).astype(np.float32)

    return dict(
        train=dict(feats=train_feats, logits=logits(train_feats),
                   labels=train_labels),
        val=dict(feats=val_feats, logits=logits(val_feats),
                 labels=val_labels),
        feats=test, logits=logits(test), weight=weight, bias=bias)


def fit(data, cfg, **kwargs):
    score = SCORES.build(cfg).fit(
        train=data['train'], val=data['val'], fc_weight=data['weight'],
        fc_bias=data['bias'], **kwargs)
    return score, score.score(feats=data['feats'], logits=data['logits'])


def fc_of(data):
    fc = torch.nn.Linear(D, C).double()
    fc.weight.data = torch.from_numpy(data['weight']).double()
    fc.bias.data = torch.from_numpy(data['bias']).double()
    return fc


def t(x):
    return torch.from_numpy(np.asarray(x)).double()


def test_every_posthoc_score_is_registered():
    assert set(POSTHOC_SCORES) <= set(SCORES.module_dict)


def test_temp_scaling(data):
    score, values = fit(data, dict(type='temp_scaling'))
    val_logits = data['val']['feats'].astype(np.float64) @ data[
        'weight'].T.astype(np.float64) + data['bias']

    def nll(temperature):
        return -np.mean(
            log_softmax(val_logits / temperature,
                        axis=1)[np.arange(val_logits.shape[0]),
                                data['val']['labels']])

    oracle_t = minimize_scalar(
        nll, bounds=(0.05, 20), method='bounded',
        options=dict(xatol=1e-10)).x
    assert score.fit_info['fit_on'] == 'val'
    assert score.temperature == pytest.approx(oracle_t, rel=RTOL)
    expected = torch.softmax(t(data['logits']) / oracle_t, 1).max(1)[0]
    np.testing.assert_allclose(values, expected.numpy(), rtol=RTOL)


def test_gen(data):
    _, values = fit(data, dict(type='gen', gamma=0.5, M=3))
    probs = torch.softmax(t(data['logits']), 1)
    probs_sorted = torch.sort(probs, dim=1)[0][:, -3:]
    expected = -torch.sum(probs_sorted**0.5 * (1 - probs_sorted)**0.5, 1)
    np.testing.assert_allclose(values, expected.numpy(), rtol=RTOL)
    # Defaults gamma=0.1, M=100 (all 5 classes).
    _, values = fit(data, dict(type='gen'))
    expected = -torch.sum(probs**0.1 * (1 - probs)**0.1, 1)
    np.testing.assert_allclose(values, expected.numpy(), rtol=RTOL)


def test_klm(data):
    score, values = fit(data, dict(type='klm'))
    w = data['weight'].astype(np.float64)
    val_softmax = softmax(data['val']['feats'] @ w.T + data['bias'], -1)
    preds = val_softmax.argmax(-1)
    templates = np.array(
        [val_softmax[preds == i].mean(axis=0) for i in range(C)])

    def kl(p, q):
        return np.sum(np.where(p != 0, p * np.log(p / q), 0))

    test_softmax = softmax(data['feats'] @ w.T + data['bias'], -1)
    expected = -pairwise_distances_argmin_min(
        test_softmax, templates, metric=kl)[1]
    np.testing.assert_allclose(score.templates, templates, rtol=RTOL)
    np.testing.assert_allclose(values, expected, rtol=RTOL)


def test_react(data):
    score, values = fit(data, dict(type='react', percentile=85))
    threshold = np.percentile(data['val']['feats'].flatten(), 85)
    assert score.threshold == pytest.approx(threshold, rel=RTOL)
    output = fc_of(data)(t(data['feats']).clip(max=threshold))
    expected = torch.logsumexp(output.detach(), dim=1)
    np.testing.assert_allclose(values, expected.numpy(), rtol=RTOL)
    # Without a val set ReAct fits on train, and says so.
    score = SCORES.build(dict(type='react')).fit(
        train=data['train'], fc_weight=data['weight'], fc_bias=data['bias'])
    assert score.fit_info['fit_on'] == 'train'
    assert score.threshold == pytest.approx(
        np.percentile(data['train']['feats'].flatten(), 90), rel=RTOL)


def ash_b(x, percentile):
    """OpenOOD's ash_b on (N, D, 1, 1)."""
    b, c, h, w = x.shape
    s1 = x.sum(dim=[1, 2, 3])
    n = x.shape[1:].numel()
    k = n - int(np.round(n * percentile / 100.0))
    flat = x.view((b, c * h * w))
    v, i = torch.topk(flat, k, dim=1)
    fill = (s1 / k).unsqueeze(dim=1).expand(v.shape)
    flat.zero_().scatter_(dim=1, index=i, src=fill)
    return x


def test_ash(data):
    _, values = fit(data, dict(type='ash'))
    x = t(data['feats']).clone().view(-1, D, 1, 1)
    output = fc_of(data)(ash_b(x, 90).view(-1, D))
    expected = torch.logsumexp(output.detach(), dim=1)
    np.testing.assert_allclose(values, expected.numpy(), rtol=RTOL)


def test_scale(data):
    _, values = fit(data, dict(type='scale'))
    x = t(data['feats']).clone().view(-1, D, 1, 1)
    original = x.clone()
    s1 = x.sum(dim=[1, 2, 3])
    k = D - int(np.round(D * 85 / 100.0))
    flat = x.view(-1, D)
    v, i = torch.topk(flat, k, dim=1)
    flat.zero_().scatter_(dim=1, index=i, src=v)
    s2 = x.sum(dim=[1, 2, 3])
    scaled = original * torch.exp(s1 / s2)[:, None, None, None]
    output = fc_of(data)(scaled.view(-1, D))
    expected = torch.logsumexp(output.detach(), dim=1)
    np.testing.assert_allclose(values, expected.numpy(), rtol=RTOL)


def test_dice(data):
    score, values = fit(data, dict(type='dice', p=70))
    mean_act = data['train']['feats'].astype(np.float64).mean(0)
    w = t(data['weight'])
    contrib = mean_act[None, :] * w.numpy()
    thresh = np.percentile(contrib, 70)
    masked_w = w * torch.Tensor(contrib > thresh).double()
    assert score.threshold == pytest.approx(thresh, rel=RTOL)
    vote = t(data['feats'])[:, None, :] * masked_w
    output = vote.sum(2) + t(data['bias'])
    expected = torch.logsumexp(output, dim=1)
    np.testing.assert_allclose(values, expected.numpy(), rtol=RTOL)


def test_vim(data):
    score, values = fit(data, dict(type='vim', dim=8))
    w = data['weight'].astype(np.float64)
    b = data['bias'].astype(np.float64)
    feature_id_train = data['train']['feats'].astype(np.float64)
    logit_id_train = feature_id_train @ w.T + b
    u = -np.matmul(np.linalg.pinv(w), b)
    ec = EmpiricalCovariance(assume_centered=True)
    ec.fit(feature_id_train - u)
    eig_vals, eigen_vectors = np.linalg.eig(ec.covariance_)
    NS = np.ascontiguousarray(
        (eigen_vectors.T[np.argsort(eig_vals * -1)[8:]]).T)
    vlogit_id_train = np.linalg.norm(
        np.matmul(feature_id_train - u, NS), axis=-1)
    alpha = logit_id_train.max(axis=-1).mean() / vlogit_id_train.mean()
    assert score.alpha == pytest.approx(alpha, rel=RTOL)
    np.testing.assert_allclose(score.origin, u, rtol=RTOL, atol=1e-8)
    feature_ood = data['feats'].astype(np.float64)
    logit_ood = feature_ood @ w.T + b
    energy_ood = torch.logsumexp(t(logit_ood), -1).numpy()
    vlogit_ood = np.linalg.norm(
        np.matmul(feature_ood - u, NS), axis=-1) * alpha
    np.testing.assert_allclose(values, -vlogit_ood + energy_ood, rtol=RTOL)
    with pytest.raises(ScoreInputError, match='dim=32 must be smaller'):
        fit(data, dict(type='vim', dim=32))


def test_rmds(data):
    score, values = fit(data, dict(type='rmds'))
    all_feats = t(data['train']['feats'])
    all_labels = torch.from_numpy(data['train']['labels'])
    class_mean, centered_data = [], []
    for c in range(C):
        class_samples = all_feats[all_labels.eq(c)]
        class_mean.append(class_samples.mean(0))
        centered_data.append(class_samples - class_mean[c].view(1, -1))
    class_mean = torch.stack(class_mean)
    cov = EmpiricalCovariance(assume_centered=False)
    cov.fit(torch.cat(centered_data).numpy())
    precision = torch.from_numpy(cov.precision_)
    whole_mean = all_feats.mean(0)
    cov = EmpiricalCovariance(assume_centered=False)
    cov.fit((all_feats - whole_mean.view(1, -1)).numpy())
    whole_precision = torch.from_numpy(cov.precision_)
    features = t(data['feats'])
    tensor1 = features - whole_mean.view(1, -1)
    background = -torch.matmul(torch.matmul(tensor1, whole_precision),
                               tensor1.t()).diag()
    class_scores = torch.zeros((features.shape[0], C)).double()
    for c in range(C):
        tensor = features - class_mean[c].view(1, -1)
        class_scores[:, c] = -torch.matmul(
            torch.matmul(tensor, precision), tensor.t()).diag()
        class_scores[:, c] = class_scores[:, c] - background
    np.testing.assert_allclose(score.class_means, class_mean.numpy(),
                               rtol=RTOL)
    np.testing.assert_allclose(values, class_scores.max(1)[0].numpy(),
                               rtol=RTOL)


@pytest.mark.parametrize('metric', ['inner_product', 'euclidean', 'cosine'])
def test_she(data, metric):
    score, values = fit(data, dict(type='she', metric=metric))
    fc = fc_of(data)
    features = t(data['train']['feats'])
    preds = fc(features).argmax(1)
    labels = torch.from_numpy(data['train']['labels'])
    patterns = torch.cat([
        features[(labels == i) & (preds == i)].mean(0, keepdim=True)
        for i in range(C)
    ])
    np.testing.assert_allclose(score.patterns, patterns.numpy(), rtol=RTOL)
    feature = t(data['feats'])
    target = patterns[fc(feature).argmax(1)]
    if metric == 'inner_product':
        expected = torch.sum(torch.mul(feature, target), dim=1)
    elif metric == 'euclidean':
        expected = -torch.sqrt(torch.sum((feature - target)**2, dim=1))
    else:
        expected = torch.cosine_similarity(feature, target, dim=1)
    np.testing.assert_allclose(values, expected.detach().numpy(), rtol=RTOL)


def test_nnguide(data):
    # alpha=1: the guide bank is the whole training set, as with OpenOOD's
    # loader read to the end.
    score, values = fit(data, dict(type='nnguide', K=10, alpha=1.0))

    def normalizer(x):
        return x / np.linalg.norm(x, axis=-1, keepdims=True) + 1e-10

    w, b = data['weight'].astype(np.float64), data['bias']
    bank_feas = normalizer(data['train']['feats'].astype(np.float64))
    bank_logits = data['train']['feats'] @ w.T + b
    bank_guide = bank_feas * torch.logsumexp(t(bank_logits),
                                             -1).numpy()[:, None]
    index = faiss.IndexFlatIP(D)
    index.add(bank_guide.astype(np.float32))
    sims, _ = index.search(
        normalizer(data['feats'].astype(np.float64)).astype(np.float32), 10)
    energy = torch.logsumexp(t(data['feats'] @ w.T + b), -1).numpy()
    np.testing.assert_allclose(values, sims.mean(axis=1) * energy, rtol=RTOL)
    score, _ = fit(data, dict(type='nnguide', K=10, alpha=0.1))
    assert score.fit_info['guide_size'] == 40
    with pytest.raises(ScoreInputError, match='fewer than K=100'):
        fit(data, dict(type='nnguide'))


@pytest.mark.parametrize('distance_as_normalizer', [True, False])
def test_fdbd(data, distance_as_normalizer):
    _, values = fit(
        data, dict(type='fdbd',
                   distance_as_normalizer=distance_as_normalizer))
    w = data['weight'].astype(np.float64)
    train_mean = t(data['train']['feats'].astype(np.float64).mean(0))
    denominator_matrix = np.zeros((C, C))
    for p in range(C):
        w_p = w - w[p, :]
        denominator = np.linalg.norm(w_p, axis=1)
        denominator[p] = 1
        denominator_matrix[p, :] = denominator
    denominator_matrix = t(denominator_matrix)
    output = fc_of(data)(t(data['feats'])).detach()
    feature = t(data['feats'])
    values_, nn_idx = output.max(1)
    logits_sub = torch.abs(output - values_.repeat(C, 1).T)
    norm = torch.norm(feature - train_mean, dim=1) \
        if distance_as_normalizer else torch.norm(feature, dim=1)
    expected = torch.sum(logits_sub / denominator_matrix[nn_idx],
                         axis=1) / norm
    np.testing.assert_allclose(values, expected.numpy(), rtol=RTOL)


def test_gradnorm_closed_form_equals_per_sample_backward(data):
    _, values = fit(data, dict(type='gradnorm'))
    fc = fc_of(data)
    logsoftmax = torch.nn.LogSoftmax(dim=-1)
    confs = []
    for i in t(data['feats']):
        targets = torch.ones((1, C)).double()
        fc.zero_grad()
        loss = torch.mean(torch.sum(-targets * logsoftmax(fc(i[None])),
                                    dim=-1))
        loss.backward()
        confs.append(torch.sum(torch.abs(fc.weight.grad.data)).item())
    # The closed form from the logits the model stored (float32).
    np.testing.assert_allclose(values, confs, rtol=RTOL)


@pytest.mark.parametrize('name', ['react', 'ash', 'scale', 'dice', 'vim',
                                  'she', 'nnguide', 'fdbd'])
def test_scores_that_need_the_final_layer_refuse_without_it(data, name):
    with pytest.raises(ScoreInputError,
                       match=f"score '{name}' needs the final linear layer"):
        SCORES.build(dict(type=name)).fit(train=data['train'],
                                          val=data['val'])


def test_scores_separate_known_from_unknown(data):
    """Sanity: on these clustered data every score ranks the known test
    samples above the unknown ones more often than not."""
    from sklearn.metrics import roc_auc_score
    is_known = np.arange(100) < 60
    for name in POSTHOC_SCORES:
        cfg = dict(type=name)
        if name == 'vim':
            cfg['dim'] = 8
        if name == 'nnguide':
            cfg.update(K=10, alpha=0.5)
        _, values = fit(data, cfg)
        assert values.shape == (100, ) and np.isfinite(values).all(), name
        assert roc_auc_score(is_known, values) > 0.5, name


def test_she_class_without_correct_samples_warns(data):
    train = dict(data['train'])
    labels = train['labels'].copy()
    preds = (train['feats'] @ data['weight'].T + data['bias']).argmax(1)
    # Relabel class 2's correctly classified samples: none left correct.
    labels[(labels == 2) & (preds == 2)] = 0
    with pytest.warns(UserWarning, match=r'classes \[2\] have no correctly'):
        score = SCORES.build(dict(type='she')).fit(
            train=dict(train, labels=labels), fc_weight=data['weight'],
            fc_bias=data['bias'])
    rows = labels == 2
    np.testing.assert_allclose(score.patterns[2],
                               train['feats'][rows].mean(0), rtol=RTOL)
    assert score.fit_info['classes_without_correct_samples'] == [2]
    with pytest.raises(ScoreInputError, match=r'classes \[2\] have no '
                       'training sample'):
        SCORES.build(dict(type='she')).fit(
            train=dict(train, labels=np.where(labels == 2, 0, labels)),
            fc_weight=data['weight'], fc_bias=data['bias'])


def test_grid_selection_on_held_out_known_and_ood_val(data):
    from sklearn.metrics import roc_auc_score

    from gradmix_plugin.evaluation import OSRMetric
    from gradmix_plugin.evaluation.scores import select_score
    rng = np.random.default_rng(3)
    ood_feats = np.maximum(rng.normal(size=(50, D)), 0).astype(np.float32)
    ood = dict(feats=ood_feats,
               logits=ood_feats @ data['weight'].T + data['bias'])
    grid = dict(percentile=[50, 70, 90, 99])
    score, record = select_score(
        dict(type='ash'), grid, data['train'], data['val'], ood,
        data['weight'], data['bias'])
    # Oracle: each point's AUROC of val vs ood, the best one chosen.
    aurocs = []
    for p in grid['percentile']:
        one = SCORES.build(dict(type='ash', percentile=p)).fit(
            fc_weight=data['weight'], fc_bias=data['bias'])
        known = one.score(data['val']['feats'])
        unknown = one.score(ood_feats)
        aurocs.append(roc_auc_score(np.r_[np.ones(120), np.zeros(50)],
                                    np.r_[known, unknown]))
    assert [r['auroc'] for r in record['results']] == pytest.approx(aurocs)
    assert record['chosen'] == dict(
        percentile=grid['percentile'][int(np.argmax(aurocs))])
    assert score.percentile == record['chosen']['percentile']
    # A point that cannot be fitted is recorded and skipped.
    _, record = select_score(dict(type='vim'), dict(dim=[8, 64]),
                             data['train'], data['val'], ood,
                             data['weight'], data['bias'])
    assert record['chosen'] == dict(dim=8)
    assert 'must be smaller' in record['results'][1]['error']
    with pytest.raises(ScoreInputError, match='needs held-out known '
                       'samples .* and an OOD validation source'):
        select_score(dict(type='ash'), grid, data['train'], data['val'],
                     None, data['weight'], data['bias'])
    # Through OSRMetric: the choice is recorded with the fit information.
    metric = OSRMetric(scores=[dict(type='ash', grid='openood')])
    metric.set_val(dict(feats=data['val']['feats']), data['val']['labels'],
                   ood=dict(feats=ood_feats))
    fit_info = {}
    labels = np.r_[np.zeros(60, int), -np.ones(40, int)]
    OSRMetric.calculate(
        dict(feats=data['feats'], logits=data['logits']), labels,
        scores=list(metric._score_specs_with_names()),
        bank=dict(feats=data['train']['feats']),
        bank_labels=data['train']['labels'], fc_weight=data['weight'],
        fc_bias=data['bias'], val=metric.val, ood_val=metric.ood_val,
        fit_info=fit_info)
    selection = fit_info['ash']['fitted']['selection']
    assert selection['grid'] == dict(
        percentile=[65, 70, 75, 80, 85, 90, 95])
    assert fit_info['ash']['args']['percentile'] == selection['chosen'][
        'percentile']


def test_bad_grids_are_refused():
    from gradmix_plugin.evaluation import OSRMetric
    with pytest.raises(ValueError,
                       match="OpenOOD has no parameter sweep for 'msp'"):
        OSRMetric(scores=[dict(type='msp', grid='openood')])
    with pytest.raises(ValueError, match="grid of 'ash' must be 'openood' "
                       'or a dict of non-empty lists'):
        OSRMetric(scores=[dict(type='ash', grid=dict(percentile=[]))])
