import copy

import pytest
import torch
from torch import nn

from gradmix_plugin.models.utils import (
    frozen_running_stats,
    repeat_running_stats_update,
)


def build_net(momentum=0.1, track_running_stats=True, sync=False):
    torch.manual_seed(0)
    norm = nn.SyncBatchNorm if sync else nn.BatchNorm2d
    return nn.Sequential(
        nn.Conv2d(3, 4, 3),
        norm(4, momentum=momentum, track_running_stats=track_running_stats),
        nn.ReLU(),
        nn.Conv2d(4, 5, 3),
        norm(5, momentum=momentum, track_running_stats=track_running_stats),
        nn.Flatten(), nn.Linear(5 * 4 * 4, 3),
        nn.BatchNorm1d(3, momentum=momentum)).train()


def assert_buffers_equal(net, oracle):
    for (name, buffer), expected in zip(net.named_buffers(),
                                        oracle.buffers()):
        torch.testing.assert_close(buffer, expected, rtol=1e-6, atol=1e-6,
                                   msg=name)


@pytest.mark.parametrize('momentum', [0.1, None])
@pytest.mark.parametrize('sync', [False, True])
def test_repeat_equals_a_second_forward(momentum, sync):
    net = build_net(momentum, sync=sync)
    oracle = copy.deepcopy(net)
    batches = torch.randn(3, 6, 3, 8, 8).unbind()
    for index, batch in enumerate(batches):
        if index == 1:  # a plain forward in between: one update only
            outputs = net(batch)
        else:
            with repeat_running_stats_update(net):
                outputs = net(batch)
            oracle(batch)
        torch.testing.assert_close(outputs, oracle(batch))
    assert_buffers_equal(net, oracle)
    assert net[1].num_batches_tracked == 5
    # The hooks are gone after the context.
    assert all(not module._forward_hooks for module in net.modules())


def test_repeat_keeps_the_graph_and_skips_eval_and_untracked_layers():
    net = build_net()
    oracle = copy.deepcopy(net)
    batch = torch.randn(6, 3, 8, 8)
    with repeat_running_stats_update(net):
        net(batch).sum().backward()
    oracle(batch)
    oracle(batch).sum().backward()
    for param, expected in zip(net.parameters(), oracle.parameters()):
        torch.testing.assert_close(param.grad, expected.grad)

    net.eval()
    state = copy.deepcopy(net.state_dict())
    with repeat_running_stats_update(net):
        net(batch)
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key]), key

    untracked = build_net(track_running_stats=False)
    with repeat_running_stats_update(untracked):
        untracked(batch)
    assert untracked[-1].num_batches_tracked == 2  # BatchNorm1d tracks
    assert untracked[1].running_mean is None


def test_frozen_running_stats_restores_every_buffer():
    net = build_net(momentum=None)
    net(torch.randn(6, 3, 8, 8))
    state = copy.deepcopy(net.state_dict())
    with frozen_running_stats(net):
        net(torch.randn(6, 3, 8, 8))
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key]), key
    with pytest.raises(RuntimeError), frozen_running_stats(net):
        net(torch.randn(6, 3, 8, 8))
        raise RuntimeError('restored on error too')
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_frozen_running_stats_keeps_saved_buffers_valid_for_backward():
    net = build_net()
    first = net(torch.randn(6, 3, 8, 8))
    with frozen_running_stats(net):
        second = net(torch.randn(6, 3, 8, 8))
    (first.sum() + second.sum()).backward()  # no in-place version error
