"""xor_plateau: the post's backward pass is the gradient of its cost, a net that answers 0.5 to
every input costs ln 2, and the case's expectations hold."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from failbench.cases.xor_plateau.model import A1, M, Net, Y, cost, forward, gradients, init


def test_the_post_s_deltas_are_the_gradient_of_its_cost_summed_over_the_examples():
    net = init(0.5, np.random.default_rng(0))
    g1, g2, _ = gradients(net)
    t1 = torch.tensor(net.theta1, requires_grad=True)
    t2 = torch.tensor(net.theta2, requires_grad=True)
    a2 = torch.cat([torch.ones(M, 1, dtype=torch.float64), torch.sigmoid(torch.tensor(A1) @ t1.T)], 1)
    a3 = torch.sigmoid(a2 @ t2.T)[:, 0]
    y = torch.tensor(Y)
    j = -(y * a3.log() + (1 - y) * (1 - a3).log()).mean()
    j.backward()
    np.testing.assert_allclose(g1 / M, t1.grad.numpy(), rtol=1e-10)
    np.testing.assert_allclose(g2 / M, t2.grad.numpy(), rtol=1e-10)
    assert math.isclose(cost(forward(net)[2]), float(j), rel_tol=1e-12)


def test_a_net_that_answers_one_half_to_every_input_costs_ln_2():
    assert math.isclose(cost(np.full(M, 0.5)), math.log(2), rel_tol=1e-12)


def test_the_post_s_init_starts_on_the_plateau():
    net = init(0.01, np.random.default_rng(0))
    a3 = forward(net)[2]
    assert np.std(a3) < 0.005 and abs(cost(a3) - math.log(2)) < 0.01
    assert isinstance(net, Net)


@pytest.mark.slow
@pytest.mark.grid
def test_quick_profile_expectations_hold_for_the_failure_and_the_cure(quick_expectations):
    """The failure (baseline) and the larger rate (larger_alpha) on the quick grid, 3 seeds."""
    table = quick_expectations("xor_plateau", ("baseline", "larger_alpha"), seeds=3)
    assert (table["seeds"] == 3).all() and len(table) == 2
