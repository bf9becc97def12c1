import math
import os

import pytest
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from mmpretrain.registry import MODELS
from pytorch_metric_learning.losses import SupConLoss as PMLSupConLoss

from gradmix_plugin.models.losses import SupConLoss
from gradmix_plugin.utils import free_port


def random_features(num_samples, num_views, dim, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(num_samples, num_views, dim, generator=generator)


def view_major(features):
    """(N, V, D) -> (V * N, D), row v * N + n is view v of sample n."""
    return torch.cat(torch.unbind(features, dim=1))


@pytest.mark.parametrize('num_views', [1, 2, 3])
def test_equals_pytorch_metric_learning(num_views):
    """Oracle: pytorch-metric-learning's SupConLoss on the flattened views.

    PML normalises the embeddings (cosine similarity), uses every other
    embedding with a label as positive and all others as the denominator,
    but has no ``-T / T_base`` factor and averages with
    ``AvgNonZeroReducer`` (anchors without positives have a zero loss and
    are left out of the mean, as here). So ours == (T / T_base) * PML.
    """
    temperature, base_temperature = 0.3, 0.07
    features = random_features(12, num_views, 8)
    labels = torch.tensor([0, 0, 1, 2, 2, 2, 3, 4, 4, 1, 5, 6])
    loss = SupConLoss(temperature, base_temperature)(features, labels)
    oracle = PMLSupConLoss(temperature=temperature)(
        view_major(features), labels.repeat(num_views))
    torch.testing.assert_close(
        loss, oracle * temperature / base_temperature)


def test_closed_form_four_samples():
    r"""Four unit vectors at right angles, labels (0, 0, 0, 1), one view.

    Dot products: z0.z1 = z1.z2 = z2.z3 = z3.z0 = 0, z0.z2 = z1.z3 = -1.
    With :math:`L = \log(2 + e^{-1/T})` (every anchor's denominator holds
    two zeros and one -1 logit):

    - anchor 0, positives {1, 2}: logits 0 and -1/T,
      :math:`\ell_0 = \frac{T}{T_b} (L + \frac{1}{2T})`;
    - anchor 1, positives {0, 2}: logits 0 and 0,
      :math:`\ell_1 = \frac{T}{T_b} L`;
    - anchor 2, positives {0, 1}: logits -1/T and 0,
      :math:`\ell_2 = \frac{T}{T_b} (L + \frac{1}{2T})`;
    - anchor 3 has no positive and is left out,

    so the loss is :math:`\frac{T}{T_b} (L + \frac{1}{3T})`.
    """
    temperature, base_temperature = 0.5, 0.07
    features = torch.tensor([[1., 0.], [0., 1.], [-1., 0.], [0., -1.]])
    labels = torch.tensor([0, 0, 0, 1])
    loss = SupConLoss(temperature, base_temperature)(features[:, None],
                                                     labels)
    log_denominator = math.log(2 + math.exp(-1 / temperature))
    expected = temperature / base_temperature * (
        log_denominator + 1 / (3 * temperature))
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_normalises_features():
    features = random_features(6, 2, 5)
    scaled = features * torch.rand(6, 2, 1) * 10 + 0.0
    loss = SupConLoss()
    torch.testing.assert_close(loss(features), loss(scaled))
    torch.testing.assert_close(
        loss(features), loss(F.normalize(features, dim=-1)))


def test_simclr_is_supcon_with_sample_labels():
    features = random_features(7, 2, 6)
    loss = SupConLoss(0.05, 0.07)
    torch.testing.assert_close(
        loss(features), loss(features, torch.arange(7)))
    # and it differs from a supervised loss with shared labels
    assert not torch.allclose(
        loss(features), loss(features, torch.tensor([0, 0, 1, 1, 2, 2, 2])))


def test_simclr_matches_nt_xent_by_hand():
    """Two views: anchor i's single positive is the other view of its
    image; the denominator runs over the 2N - 1 other embeddings."""
    temperature = 0.2
    features = F.normalize(random_features(5, 2, 4), dim=-1)
    flat = view_major(features)
    logits = flat @ flat.T / temperature
    logits.fill_diagonal_(float('-inf'))
    partner = torch.arange(10).roll(5)
    expected = -(logits[torch.arange(10), partner] -
                 torch.logsumexp(logits, dim=1)).mean()
    loss = SupConLoss(temperature, base_temperature=temperature)(features)
    torch.testing.assert_close(loss, expected)


def test_contrast_mode_one():
    """Only view-0 embeddings are anchors; the contrast set is unchanged."""
    temperature = 0.1
    features = F.normalize(random_features(6, 2, 4), dim=-1)
    labels = torch.tensor([0, 1, 1, 2, 0, 3])
    flat = view_major(features)
    all_labels = labels.repeat(2)
    logits = flat @ flat.T / temperature
    logits.fill_diagonal_(float('-inf'))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (all_labels[:, None] == all_labels[None]) & ~torch.eye(
        12, dtype=torch.bool)
    per_anchor = -torch.where(positives, log_prob, 0.).sum(1) / \
        positives.sum(1)
    loss = SupConLoss(temperature, temperature, contrast_mode='one')
    torch.testing.assert_close(loss(features, labels), per_anchor[:6].mean())


def test_anchor_without_positive_has_finite_gradients():
    features = random_features(4, 1, 3).requires_grad_(True)
    labels = torch.tensor([0, 0, 1, 2])  # samples 2 and 3 have no positive
    loss = SupConLoss()(features, labels)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(features.grad).all()
    # The anchors without positives do not count; anchors 0 and 1 do.
    only_pair = SupConLoss()(features[:2].detach(), labels[:2])
    assert not torch.allclose(loss, only_pair)  # negatives 2, 3 still count


def test_no_positive_at_all_gives_zero():
    features = random_features(3, 1, 3).requires_grad_(True)
    loss = SupConLoss()(features, torch.tensor([0, 1, 2]))
    loss.backward()
    assert loss.item() == 0
    assert torch.equal(features.grad, torch.zeros_like(features))


def test_features_positive():
    features = random_features(6, 2, 5)
    loss = SupConLoss(0.05, 0.07)
    torch.testing.assert_close(
        loss(features, features_positive=features.clone()), loss(features))

    # For anchor i the positive logit is z_i . z~_p(i) (p(i): the other
    # view of the same image, taken from the masked batch); the denominator
    # runs over the original batch.
    masked = random_features(6, 2, 5, seed=1)
    flat = F.normalize(view_major(features), dim=-1)
    flat_masked = F.normalize(view_major(masked), dim=-1)
    logits = flat @ flat.T / 0.05
    logits.fill_diagonal_(float('-inf'))
    partner = torch.arange(12).roll(6)
    positive_logits = (flat * flat_masked[partner]).sum(1) / 0.05
    expected = -(0.05 / 0.07) * (
        positive_logits - torch.logsumexp(logits, dim=1)).mean()
    torch.testing.assert_close(
        loss(features, features_positive=masked), expected)


def test_registry_and_bad_inputs():
    loss = MODELS.build(dict(type='SupConLoss', temperature=0.05))
    assert isinstance(loss, SupConLoss) and loss.temperature == 0.05
    with pytest.raises(ValueError, match=r'\(4, 3\)'):
        loss(torch.rand(4, 3))
    with pytest.raises(ValueError, match='labels of shape'):
        loss(torch.rand(4, 2, 3), torch.arange(3))
    with pytest.raises(ValueError, match='features_positive'):
        loss(torch.rand(4, 2, 3), features_positive=torch.rand(4, 1, 3))
    with pytest.raises(ValueError, match="'both'"):
        SupConLoss(contrast_mode='both')


def distributed_cases(local=slice(None)):
    """Loss inputs of the distributed test, restricted to ``local``.

    With one view, labels 2, 6 and 4 have no positive: rank 0 (samples
    0-3) has 3 anchors with a positive, rank 1 only 1, so the reduction
    over a different number of valid anchors per rank is covered.
    """
    features = random_features(8, 2, 5)[local]
    positive = random_features(8, 2, 5, seed=1)[local]
    labels = torch.tensor([0, 1, 0, 2, 1, 3, 6, 4])[local]
    return {
        'supcon': (features, dict(labels=labels)),
        'supcon_one_view': (features[:, :1], dict(labels=labels)),
        'simclr': (features, dict()),
        'mix': (features, dict(features_positive=positive)),
    }


def run_cases(cases):
    results = {}
    for name, (features, kwargs) in cases.items():
        for mode in ('all', 'one'):
            leaf = features.clone().requires_grad_()
            loss = SupConLoss(0.1, 0.07, contrast_mode=mode)(leaf, **kwargs)
            loss.backward()
            results[name, mode] = (loss.detach(), leaf.grad)
    return results


def distributed_worker(rank, world_size, port, result_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch_dist.init_process_group(
        'gloo', rank=rank, world_size=world_size)
    try:
        results = run_cases(
            distributed_cases(slice(rank * 4, rank * 4 + 4)))
        torch.save(results, os.path.join(result_dir, f'rank{rank}.pth'))
    finally:
        torch_dist.destroy_process_group()


@pytest.mark.slow
def test_distributed_gather_matches_single_process(tmp_path):
    """Two gloo CPU processes with 4 samples each equal one process with 8.

    Convention: the mean of the ranks' losses is the single-process loss;
    the gradient of each rank's local features is ``world_size`` times the
    single-process gradient of those samples, which DDP's averaging of
    parameter gradients over ranks divides out.
    """
    world_size = 2
    mp.spawn(
        distributed_worker,
        args=(world_size, free_port(), str(tmp_path)),
        nprocs=world_size,
        join=True)
    ranks = [
        torch.load(tmp_path / f'rank{rank}.pth') for rank in range(world_size)
    ]
    single = run_cases(distributed_cases())
    assert set(single) == set(ranks[0])
    for key, (loss, grad) in single.items():
        rank_losses = torch.stack([results[key][0] for results in ranks])
        torch.testing.assert_close(rank_losses.mean(), loss, msg=str(key))
        rank_grads = torch.cat([results[key][1] for results in ranks])
        torch.testing.assert_close(
            rank_grads, world_size * grad, msg=str(key))
