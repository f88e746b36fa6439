"""harness/probes.py against values worked out by hand on tiny modules, and against autograd."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from failbench.probes import FLAT_SLOPE, Probe


def test_hardtanh_saturation_is_exactly_where_autograd_gives_zero():
    x = torch.tensor([[-2.0, -1.0, -0.5, 0.0], [0.5, 0.99, 1.0, 3.0]], requires_grad=True)
    model = nn.Sequential(nn.Hardtanh())
    with Probe(model) as probe:
        model(x).sum().backward()
    # by hand: -2, -1, 1, 3 sit on or past the bounds -> 4 of 8
    assert probe.saturation == {"0": 0.5}
    assert probe.saturation["0"] == float((x.grad == 0).float().mean())


def test_hardtanh_with_other_bounds():
    model = nn.Sequential(nn.Hardtanh(min_val=-0.5, max_val=0.25))
    with Probe(model) as probe:
        model(torch.tensor([-0.6, -0.5, 0.0, 0.2, 0.25, 0.3]))
    assert probe.saturation["0"] == pytest.approx(4 / 6)  # -0.6, -0.5, 0.25, 0.3


def test_tanh_saturation_uses_one_percent_of_peak_slope():
    # tanh'(z) = 1 - tanh(z)^2 < 0.01  <=>  |z| > atanh(sqrt(0.99)) = 2.9932
    edge = math.atanh(math.sqrt(1 - FLAT_SLOPE))
    assert edge == pytest.approx(2.9932, abs=1e-4)
    model = nn.Sequential(nn.Tanh())
    with Probe(model) as probe:
        model(torch.tensor([0.0, 1.0, 2.9, 3.1, -3.1, -5.0]))
    assert probe.saturation["0"] == pytest.approx(3 / 6)  # 3.1, -3.1, -5


def test_sigmoid_saturation_uses_one_percent_of_peak_slope():
    # sigmoid'(z) = s(1 - s) < 0.25 * 0.01  <=>  |z| > 5.9864
    s = (1 - math.sqrt(1 - FLAT_SLOPE)) / 2
    assert -math.log(s / (1 - s)) == pytest.approx(5.9864, abs=1e-4)
    model = nn.Sequential(nn.Sigmoid())
    with Probe(model) as probe:
        model(torch.tensor([0.0, 5.0, 5.9, 6.5, -7.0]))
    assert probe.saturation["0"] == pytest.approx(2 / 5)  # 6.5, -7


def test_relu_zero_and_dead_shares():
    model = nn.Sequential(nn.ReLU())
    with Probe(model) as probe:
        model(torch.tensor([[1.0, -1.0, -2.0], [2.0, -3.0, 3.0]]))
    assert probe.zero["0"] == pytest.approx(3 / 6)  # three zero outputs of six
    assert probe.dead["0"] == pytest.approx(1 / 3)  # only unit 1 is zero on both examples


def test_gradient_norm_per_layer_weight_by_hand():
    first, second = nn.Linear(2, 2, bias=False), nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        first.weight.copy_(torch.tensor([[1.0, 2.0], [3.0, 4.0]]))
        second.weight.copy_(torch.tensor([[0.5, -1.0]]))
    model = nn.Sequential(first, second)
    x = torch.tensor([[1.0, 1.0], [2.0, 0.0]])
    with Probe(model) as probe:
        model(x).sum().backward()
    # loss = sum_b v . (W x_b): dW = v^T (sum_b x_b) = [[0.5, -1]]^T [3, 1]; dv = sum_b W x_b = [5, 13]
    assert probe.grad_norm["0"] == pytest.approx(math.hypot(1.5, 0.5, -3.0, -1.0))
    assert probe.grad_norm["1"] == pytest.approx(math.hypot(5.0, 13.0))
    assert probe.grad_norm["0"] == pytest.approx(float(first.weight.grad.norm()))


def test_gradient_norm_is_of_the_last_pass_not_the_accumulated_grad():
    layer = nn.Linear(3, 1)
    model = nn.Sequential(layer)
    x = torch.ones(1, 3)
    with Probe(model) as probe:
        model(x).sum().backward()
        model(x).sum().backward()  # .grad now holds twice one pass
    assert probe.grad_norm["0"] == pytest.approx(math.sqrt(3.0))
    assert float(layer.weight.grad.norm()) == pytest.approx(2 * math.sqrt(3.0))


def test_spread_across_the_batch_by_hand():
    model = nn.Sequential(nn.Identity())
    with Probe(model, spread_of="") as probe:
        model(torch.tensor([[1.0, 2.0], [3.0, 6.0]]))
    assert probe.spread == pytest.approx(1.5)  # population std per column: 1 and 2
    with Probe(model, spread_of="") as probe:
        model(torch.tensor([[4.0, 4.0], [4.0, 4.0]]))
    assert probe.spread == 0.0  # every input gets the same output: the collapse a case looks for


def test_hooks_leave_values_and_gradients_alone_and_are_removed():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.Hardtanh(), nn.Conv2d(3, 1, 3), nn.Tanh())
    x = torch.randn(2, 1, 6, 6)
    model(x).square().sum().backward()
    bare = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    with Probe(model, spread_of="") as probe:
        model(x).square().sum().backward()
    for p, g in zip(model.parameters(), bare):
        torch.testing.assert_close(p.grad, g, rtol=0, atol=0)
    assert set(probe.saturation) == {"1", "3"} and set(probe.grad_norm) == {"0", "2"}
    assert all(not m._forward_hooks for m in model.modules())
    assert all(not p._backward_hooks for p in model.parameters())
