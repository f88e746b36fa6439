"""sigmoid_stack: from the small init the digit's signal shrinks at every sigmoid layer, forward and
backward (the answer's vanishing gradient), so every digit gets the same output and the first layer
almost no gradient; the measurements see it, and the case's expectations hold."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from failbench.cases.sigmoid_stack.model import SigmoidStack, load
from failbench.cases.sigmoid_stack.train import measure, update_ratio


def _gradient_norms(model: SigmoidStack, x, y) -> list[float]:
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    return [float(w.grad.norm()) for w in model.weights()]


@pytest.mark.parametrize("init, most", [("small", 1e-6), ("unit", math.inf)])
def test_the_small_init_gives_every_digit_the_same_output(init, most):
    torch.manual_seed(0)
    data = load(torch.device("cpu"))
    spread = measure(SigmoidStack(init=init), data)["output_spread"]
    assert spread <= most if init == "small" else spread > 0.1


def test_the_gradient_vanishes_layer_by_layer_from_the_small_init_and_not_from_unit_weights():
    """Each sigmoid layer passes back at most 0.25 x its weights' gain; from 0.01 x randn over 100
    inputs the gain is ~0.1, so the first layer's gradient is orders of magnitude below the last's."""
    train_x, train_y = load(torch.device("cpu"))[:2]
    torch.manual_seed(0)
    small = _gradient_norms(SigmoidStack(init="small"), train_x[:256], train_y[:256])
    assert all(a < b for a, b in zip(small[1:-1], small[2:]))  # hidden layers: smaller the deeper back
    assert small[0] / small[-1] < 1e-4
    torch.manual_seed(0)
    unit = _gradient_norms(SigmoidStack(init="unit"), train_x[:256], train_y[:256])
    assert unit[0] / unit[-1] > 1e-2


def test_a_constant_output_scores_chance_at_the_loss_of_ln_10():
    torch.manual_seed(0)
    metrics = measure(SigmoidStack(init="small"), load(torch.device("cpu")))
    assert abs(metrics["train_loss"] - math.log(10)) < 0.01 and metrics["train_accuracy"] < 0.2


def test_update_ratio_is_the_median_relative_step():
    before = [torch.ones(2, 2), torch.ones(3), 2 * torch.ones(4)]
    after = [1.1 * torch.ones(2, 2), 1.5 * torch.ones(3), 2 * torch.ones(4)]
    assert math.isclose(update_ratio(before, after), 0.1, rel_tol=1e-6)


def test_unknown_settings_are_refused():
    with pytest.raises(ValueError, match="unknown init"):
        SigmoidStack(init="zeros")
    with pytest.raises(ValueError, match="unknown activation"):
        SigmoidStack(activation="gelu")


@pytest.mark.slow
@pytest.mark.grid
def test_quick_profile_expectations_hold_for_the_failure_and_the_cure(quick_expectations):
    """The failure (baseline) and the N(0, 1) init (unit_init) on the quick grid, 3 seeds."""
    table = quick_expectations("sigmoid_stack", ("baseline", "unit_init"), seeds=3)
    assert (table["seeds"] == 3).all() and len(table) == 2
