"""Time every registered open-set score against OpenOOD's computation.

On synthetic CIFAR-scale arrays (``--queries`` 10,000 test vectors, a
``--bank`` 50,000-vector training bank, 512-d ReLU features, a linear
layer; 10 classes, then 1,000), for each score:

- ours: ``SCORES.build(cfg).fit(...)`` then ``.score(...)`` on all
  queries (NumPy / faiss, whole arrays);
- OpenOOD: a straightforward reimplementation of OpenOOD v1.5's
  postprocessor (``openood/postprocessors/<name>_postprocessor.py``): its
  ``setup`` on the same arrays, then ``postprocess`` batch by batch
  (``--batch-size`` 128, torch on the CPU, float32 as there) on the stored
  features and logits (the network's forward pass is not timed on either
  side). Slow references are timed on the first ``--ref-queries`` queries
  and extrapolated linearly (setup is timed whole). GradNorm's reference is
  OpenOOD's per-sample backward loop.

Then all scores of one evaluation from one pass over the stored arrays:
``OSRMetric.calculate`` with every score (fit, score and metrics).
Ours and OpenOOD's run alternately ``--repeats`` times; the fastest run of
each is reported (the machine may be shared).

Example::

    OMP_NUM_THREADS=2 nice -n 19 python benchmarks/benchmark_scores.py
"""
import argparse
import os
import time
from typing import Callable, Dict, Tuple

import faiss
import numpy as np
import torch
from benchmark_utils import machine_info, markdown_table, write_json
from scipy.special import softmax as np_softmax
from sklearn.covariance import EmpiricalCovariance
from sklearn.metrics import pairwise_distances_argmin_min

from gradmix_plugin.evaluation import OSRMetric
from gradmix_plugin.registry import SCORES

CPU = torch.device('cpu')
#: References too slow to run on every query (per-class loops, Python
#: metrics, per-sample backward, per-batch exact search of the bank).
SLOW_REFERENCES = ('klm', 'rmds', 'mahalanobis', 'gradnorm', 'knn', 'dice')
#: Score configs timed (OpenOOD defaults; ViM's dim 256 for 512-d).
CONFIGS = dict(
    msp=dict(type='msp'),
    mls=dict(type='mls'),
    energy=dict(type='energy'),
    temp_scaling=dict(type='temp_scaling'),
    gen=dict(type='gen'),
    klm=dict(type='klm'),
    react=dict(type='react'),
    ash=dict(type='ash'),
    scale=dict(type='scale'),
    dice=dict(type='dice'),
    vim=dict(type='vim', dim=256),
    rmds=dict(type='rmds'),
    she=dict(type='she'),
    nnguide=dict(type='nnguide'),
    fdbd=dict(type='fdbd'),
    gradnorm=dict(type='gradnorm'),
    mahalanobis=dict(type='mahalanobis'),
    knn=dict(type='knn', k=50))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--queries', type=int, default=10000)
    parser.add_argument('--bank', type=int, default=50000)
    parser.add_argument('--val', type=int, default=5000,
                        help='held-out known vectors (temp_scaling, klm, '
                        'react)')
    parser.add_argument('--dim', type=int, default=512)
    parser.add_argument('--classes', type=int, nargs='+',
                        default=[10, 1000])
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--ref-queries', type=int, default=500,
                        help='queries of the slow OpenOOD references '
                        f'({", ".join(SLOW_REFERENCES)}), extrapolated to '
                        '--queries; the others run on all queries')
    parser.add_argument('--repeats', type=int, default=2,
                        help='interleaved repetitions (ours, OpenOOD, ours, '
                        '...); the minimum is reported')
    parser.add_argument('--scores', nargs='+', default=list(CONFIGS))
    parser.add_argument('--quick', action='store_true',
                        help='tiny arrays, for smoke tests only')
    parser.add_argument(
        '--out', default='benchmarks/results/benchmark_scores.json')
    args = parser.parse_args(argv)
    if args.quick:
        args.queries, args.bank, args.val, args.dim = 300, 2000, 300, 64
        args.classes, args.ref_queries, args.repeats = [5], 100, 1
        CONFIGS['vim'] = dict(type='vim', dim=32)
        CONFIGS['nnguide'] = dict(type='nnguide', K=10, alpha=0.1)
    return args


def synthetic(n_query, n_bank, n_val, dim, classes, seed=0):
    """ReLU features around class centres, a linear layer fitted loosely
    to them (centre directions), logits; queries half known, half not."""
    rng = np.random.default_rng(seed)
    centres = np.abs(rng.normal(size=(classes, dim))).astype(np.float32)

    def split(n, known=True):
        labels = rng.integers(0, classes, n)
        base = centres[labels] if known else np.abs(
            rng.normal(size=(n, dim))).astype(np.float32)
        x = base + rng.normal(size=(n, dim)).astype(np.float32)
        return np.maximum(x, 0, dtype=np.float32), labels

    weight = (centres - centres.mean(0)) / np.sqrt(dim)
    weight = weight.astype(np.float32)
    bias = np.zeros(classes, np.float32)

    def with_logits(feats, labels):
        return dict(feats=feats, logits=feats @ weight.T + bias,
                    labels=labels)

    train = with_logits(*split(n_bank))
    val = with_logits(*split(n_val))
    known, _ = split(n_query // 2)
    unknown, _ = split(n_query - n_query // 2, known=False)
    test = with_logits(np.concatenate([known, unknown]),
                       np.r_[np.zeros(n_query // 2, int),
                             -np.ones(n_query - n_query // 2, int)])
    return train, val, test, weight, bias


# -- OpenOOD v1.5 postprocessors, reimplemented on stored arrays ----------
def _normalizer(x):
    return x / np.linalg.norm(x, axis=-1, keepdims=True) + 1e-10


def _ash_b(x, percentile):
    b, c, h, w = x.shape
    s1 = x.sum(dim=[1, 2, 3])
    n = x.shape[1:].numel()
    k = n - int(np.round(n * percentile / 100.0))
    t = x.view((b, c * h * w))
    v, i = torch.topk(t, k, dim=1)
    fill = (s1 / k).unsqueeze(dim=1).expand(v.shape)
    t.zero_().scatter_(dim=1, index=i, src=fill)
    return x


def _scale(x, percentile):
    original = x.clone()
    b, c, h, w = x.shape
    s1 = x.sum(dim=[1, 2, 3])
    n = x.shape[1:].numel()
    k = n - int(np.round(n * percentile / 100.0))
    t = x.view((b, c * h * w))
    v, i = torch.topk(t, k, dim=1)
    t.zero_().scatter_(dim=1, index=i, src=v)
    s2 = x.sum(dim=[1, 2, 3])
    return original * torch.exp(s1 / s2)[:, None, None, None]


def openood_reference(name: str, train, val, w, b
                      ) -> Tuple[Callable, Callable]:
    """``(setup, postprocess)`` of OpenOOD's postprocessor ``name``:
    ``setup()`` returns a state, ``postprocess(state, feats, logits)``
    scores one batch (torch float32 tensors)."""
    fc = torch.nn.Linear(w.shape[1], w.shape[0])
    fc.weight.data = torch.from_numpy(w)
    fc.bias.data = torch.from_numpy(b)
    C = w.shape[0]

    def none():
        return None

    if name == 'msp':
        return none, lambda s, f, z: torch.softmax(z, 1).max(1)[0]
    if name == 'mls':
        return none, lambda s, f, z: z.max(1)[0]
    if name == 'energy':
        return none, lambda s, f, z: torch.logsumexp(z, 1)
    if name == 'temp_scaling':
        def setup():
            temperature = torch.nn.Parameter(torch.ones(1) * 1.5)
            logits = torch.from_numpy(val['logits'])
            labels = torch.from_numpy(val['labels'])
            nll = torch.nn.CrossEntropyLoss()
            optimizer = torch.optim.LBFGS([temperature], lr=0.01,
                                          max_iter=50)

            def closure():
                optimizer.zero_grad()
                loss = nll(logits / temperature, labels)
                loss.backward()
                return loss

            optimizer.step(closure)
            return temperature.detach()
        return setup, lambda s, f, z: torch.softmax(z / s, 1).max(1)[0]
    if name == 'gen':
        def post(s, f, z):
            probs = torch.sort(torch.softmax(z, 1), dim=1)[0][:, -100:]
            return -torch.sum(probs**0.1 * (1 - probs)**0.1, dim=1)
        return none, post
    if name == 'klm':
        def kl(p, q):
            return np.sum(np.where(p != 0, p * np.log(p / q), 0))

        def setup():
            sm = np_softmax(val['feats'] @ w.T + b, axis=-1)
            preds = sm.argmax(-1)
            return np.array([sm[preds == i].mean(axis=0) for i in range(C)
                             if (preds == i).any()])

        def post(s, f, z):
            sm = np_softmax((f @ fc.weight.data.T + fc.bias.data).numpy(),
                            axis=-1)
            return -pairwise_distances_argmin_min(sm, s, metric=kl)[1]
        return setup, post
    if name == 'react':
        def setup():
            return np.percentile(val['feats'].flatten(), 90)
        return setup, lambda s, f, z: torch.logsumexp(
            fc(f.clip(max=s)).detach(), 1)
    if name == 'ash':
        return none, lambda s, f, z: torch.logsumexp(fc(_ash_b(
            f.clone().view(f.shape[0], -1, 1, 1), 90).view(
                f.shape[0], -1)).detach(), 1)
    if name == 'scale':
        return none, lambda s, f, z: torch.logsumexp(fc(_scale(
            f.clone().view(f.shape[0], -1, 1, 1), 85).view(
                f.shape[0], -1)).detach(), 1)
    if name == 'dice':
        def setup():
            mean_act = train['feats'].mean(0)
            contrib = mean_act[None, :] * w
            thresh = np.percentile(contrib, 90)
            return fc.weight.data * torch.Tensor(contrib > thresh)

        def post(s, f, z):
            vote = f[:, None, :] * s
            return torch.logsumexp(vote.sum(2) + fc.bias.data, 1)
        return setup, post
    if name == 'vim':
        def setup():
            feats = train['feats']
            logit_train = feats @ w.T + b
            u = -np.matmul(np.linalg.pinv(w), b)
            ec = EmpiricalCovariance(assume_centered=True)
            ec.fit(feats - u)
            eig_vals, eigen_vectors = np.linalg.eig(ec.covariance_)
            NS = np.ascontiguousarray(
                (eigen_vectors.T[np.argsort(eig_vals * -1)[256:]]).T)
            vlogit = np.linalg.norm(np.matmul(feats - u, NS), axis=-1)
            alpha = logit_train.max(axis=-1).mean() / vlogit.mean()
            return u, NS, alpha

        def post(s, f, z):
            u, NS, alpha = s
            logit = (f @ fc.weight.data.T + fc.bias.data).numpy()
            energy = torch.logsumexp(torch.from_numpy(logit), -1).numpy()
            vlogit = np.linalg.norm(np.matmul(f.numpy() - u, NS),
                                    axis=-1) * alpha
            return -vlogit + energy
        return setup, post
    if name in ('rmds', 'mahalanobis'):
        def setup():
            feats = torch.from_numpy(train['feats'])
            labels = torch.from_numpy(train['labels'])
            means, centred = [], []
            for c in range(C):
                samples = feats[labels.eq(c)]
                means.append(samples.mean(0))
                centred.append(samples - means[c].view(1, -1))
            means = torch.stack(means)
            cov = EmpiricalCovariance(assume_centered=False)
            cov.fit(torch.cat(centred).numpy().astype(np.float32))
            precision = torch.from_numpy(cov.precision_).float()
            if name == 'mahalanobis':
                return means, precision, None, None
            whole = feats.mean(0)
            cov = EmpiricalCovariance(assume_centered=False)
            cov.fit((feats - whole.view(1, -1)).numpy().astype(np.float32))
            return means, precision, whole, torch.from_numpy(
                cov.precision_).float()

        def post(s, f, z):
            means, precision, whole, whole_precision = s
            scores = torch.zeros((f.shape[0], C))
            background = 0
            if whole is not None:
                t1 = f - whole.view(1, -1)
                background = -torch.matmul(
                    torch.matmul(t1, whole_precision), t1.t()).diag()
            for c in range(C):
                t = f - means[c].view(1, -1)
                scores[:, c] = -torch.matmul(torch.matmul(t, precision),
                                             t.t()).diag() - background
            return torch.max(scores, dim=1)[0]
        return setup, post
    if name == 'she':
        def setup():
            feats = torch.from_numpy(train['feats'])
            labels = torch.from_numpy(train['labels'])
            preds = fc(feats).argmax(1)
            return torch.cat([
                feats[(labels == i) & (preds == i)].mean(0, keepdim=True)
                for i in range(C)
            ])

        def post(s, f, z):
            return torch.sum(torch.mul(f, s[z.argmax(1)]), dim=1)
        return setup, post
    if name == 'nnguide':
        def setup():
            n = int(train['feats'].shape[0] * 0.01)
            bank = _normalizer(train['feats'][:n])
            confs = torch.logsumexp(torch.from_numpy(train['logits'][:n]),
                                    -1).numpy()
            return (bank * confs[:, None]).astype(np.float32)

        def post(s, f, z):
            index = faiss.IndexFlatIP(s.shape[-1])
            index.add(s)
            sims, _ = index.search(_normalizer(f.numpy()), 100)
            energy = torch.logsumexp(z, -1).numpy()
            return sims.mean(axis=1) * energy
        return setup, post
    if name == 'fdbd':
        def setup():
            mean = torch.from_numpy(train['feats'].mean(0))
            denominator = np.zeros((C, C))
            for p in range(C):
                d = np.linalg.norm(w - w[p, :], axis=1)
                d[p] = 1
                denominator[p, :] = d
            return mean, torch.tensor(denominator)

        def post(s, f, z):
            mean, denominator = s
            values, nn_idx = z.max(1)
            logits_sub = torch.abs(z - values.repeat(C, 1).T)
            return torch.sum(logits_sub / denominator[nn_idx],
                             axis=1) / torch.norm(f - mean, dim=1)
        return setup, post
    if name == 'gradnorm':
        def post(s, f, z):
            logsoftmax = torch.nn.LogSoftmax(dim=-1)
            confs = []
            for i in f:
                targets = torch.ones((1, C))
                fc.zero_grad()
                loss = torch.mean(torch.sum(
                    -targets * logsoftmax(fc(i[None])), dim=-1))
                loss.backward()
                confs.append(torch.sum(torch.abs(
                    fc.weight.grad.data)).item())
            return np.array(confs)
        return none, post
    if name == 'knn':
        def setup():
            index = faiss.IndexFlatL2(train['feats'].shape[1])
            index.add(_normalizer(train['feats']).astype(np.float32))
            return index

        def post(s, f, z):
            distances, _ = s.search(
                _normalizer(f.numpy()).astype(np.float32), 50)
            return -distances[:, -1]
        return setup, post
    raise KeyError(name)


def time_ours(name, train, val, test, w, b) -> Dict[str, float]:
    start = time.perf_counter()
    score = SCORES.build(CONFIGS[name])
    if score.needs_fit:
        score.fit(train=train, val=val, fc_weight=w, fc_bias=b)
    fitted = time.perf_counter()
    score.score(feats=test['feats'], logits=test['logits'])
    done = time.perf_counter()
    return dict(fit_s=fitted - start, score_s=done - fitted,
                total_s=done - start)


def time_reference(name, train, val, test, w, b, batch_size,
                   ref_queries) -> Dict[str, float]:
    setup, post = openood_reference(name, train, val, w, b)
    start = time.perf_counter()
    state = setup()
    setup_s = time.perf_counter() - start
    n = test['feats'].shape[0]
    if name in SLOW_REFERENCES:
        n = min(ref_queries, n)
    feats = torch.from_numpy(test['feats'][:n])
    logits = torch.from_numpy(test['logits'][:n])
    start = time.perf_counter()
    with torch.enable_grad() if name == 'gradnorm' else torch.no_grad():
        for i in range(0, n, batch_size):
            post(state, feats[i:i + batch_size], logits[i:i + batch_size])
    post_s = (time.perf_counter() - start) * test['feats'].shape[0] / n
    return dict(setup_s=setup_s, postprocess_s=post_s,
                total_s=setup_s + post_s, queries_timed=n)


def main(argv=None):
    args = parse_args(argv)
    torch.set_num_threads(int(os.environ.get('OMP_NUM_THREADS', '2')))
    results = dict(machine=machine_info(CPU), args=vars(args), cases=[],
                   one_pass=[])
    rows, pass_rows = [], []
    for classes in args.classes:
        print(f'{classes} classes: building arrays', flush=True)
        train, val, test, w, b = synthetic(args.queries, args.bank,
                                           args.val, args.dim, classes)
        separate = 0.0
        for name in args.scores:
            print(f'  {name}', flush=True)
            runs_ours, runs_ref = [], []
            for _ in range(args.repeats):
                runs_ours.append(time_ours(name, train, val, test, w, b))
                runs_ref.append(
                    time_reference(name, train, val, test, w, b,
                                   args.batch_size, args.ref_queries))
            ours = min(runs_ours, key=lambda r: r['total_s'])
            ref = min(runs_ref, key=lambda r: r['total_s'])
            ours['runs_total_s'] = [r['total_s'] for r in runs_ours]
            ref['runs_total_s'] = [r['total_s'] for r in runs_ref]
            separate += ours['total_s']
            results['cases'].append(
                dict(score=name, classes=classes, ours=ours, openood=ref))
            rows.append([
                name, classes, f"{ours['fit_s']:.2f}",
                f"{ours['score_s']:.2f}", f"{ours['total_s']:.2f}",
                f"{ref['setup_s']:.2f}", f"{ref['postprocess_s']:.2f}",
                f"{ref['total_s']:.2f}",
                f"{ref['total_s'] / ours['total_s']:.1f}x",
                ref['queries_timed']
            ])
        start = time.perf_counter()
        OSRMetric.calculate(
            dict(feats=test['feats'], logits=test['logits']),
            test['labels'],
            bank=dict(feats=train['feats'], logits=train['logits']),
            bank_labels=train['labels'],
            scores=[dict(CONFIGS[n], name=n) for n in args.scores],
            feature='feats', fc_weight=w, fc_bias=b, val=val)
        one_pass = time.perf_counter() - start
        results['one_pass'].append(
            dict(classes=classes, osr_metric_s=one_pass,
                 separate_scores_s=separate))
        pass_rows.append([classes, len(args.scores), f'{one_pass:.1f}',
                          f'{separate:.1f}'])
    table = markdown_table([
        'score', 'classes', 'ours fit (s)', 'ours score (s)',
        'ours total (s)', 'OpenOOD setup (s)', 'OpenOOD postprocess (s)',
        'OpenOOD total (s)', 'speed-up', 'OpenOOD queries timed'
    ], rows)
    print(table)
    print(markdown_table([
        'classes', 'scores', 'OSRMetric.calculate, all scores (s)',
        'sum of the scores alone (s)'
    ], pass_rows))
    write_json(results, args.out)


if __name__ == '__main__':
    main()
