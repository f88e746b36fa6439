"""dead_relu_adam: a ReLU layer dead on every digit makes the output the same for every digit and
stops every gradient below it (the reply's "derivatives are all zero"), the measurement sees it, and
the case's expectations hold."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from failbench.cases.dead_relu_adam.model import DigitCNN, load
from failbench.cases.dead_relu_adam.train import measure


def _net_with_a_dead_hidden_layer() -> DigitCNN:
    torch.manual_seed(0)
    model = DigitCNN()
    with torch.no_grad():
        model.fc1.bias.fill_(-1e3)  # every unit of the hidden linear layer below zero, for any digit
    return model


def test_a_dead_layer_gives_every_digit_the_same_output_and_the_layers_below_no_gradient():
    model = _net_with_a_dead_hidden_layer()
    train_x, train_y = load(torch.device("cpu"))[:2]
    out = model(train_x[:100])
    assert torch.equal(out, out[:1].expand_as(out))  # the output is fc2's bias alone
    F.cross_entropy(out, train_y[:100]).backward()
    for layer in (model.conv1, model.conv2, model.fc1):
        assert torch.count_nonzero(layer.weight.grad) == 0
    assert torch.count_nonzero(model.fc2.bias.grad) > 0  # only the class prior can still move


def test_measure_reports_the_dead_layer_and_the_loss_of_a_constant_output():
    data = load(torch.device("cpu"))
    metrics = measure(_net_with_a_dead_hidden_layer(), data)
    assert metrics["dead_units"] == 1.0
    # a constant output's cross-entropy is at least the labels' entropy: ln 10 for balanced digits
    labels = torch.bincount(data[1], minlength=10).float() / len(data[1])
    assert metrics["train_loss"] >= float(-(labels * labels.log()).sum()) - 1e-6
    assert math.isclose(float(-(labels * labels.log()).sum()), math.log(10), rel_tol=0.01)


def test_a_fresh_net_has_no_dead_layer():
    torch.manual_seed(0)
    assert measure(DigitCNN(), load(torch.device("cpu")))["dead_units"] < 1.0


def test_a_leaky_net_reports_no_dead_units():
    torch.manual_seed(0)
    assert "dead_units" not in measure(DigitCNN("leaky"), load(torch.device("cpu")))


@pytest.mark.slow
@pytest.mark.grid
def test_quick_profile_expectations_hold_for_the_failure_and_the_cure(quick_expectations):
    """The failure (baseline) and the reply's smaller rate (lower_lr) on the quick grid, 3 seeds."""
    table = quick_expectations("dead_relu_adam", ("baseline", "lower_lr"), seeds=3)
    assert (table["seeds"] == 3).all() and len(table) == 2
