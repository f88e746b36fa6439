"""binary_ce_labels: Keras's binary cross-entropy on a label above 1 rewards an output of 1 without
bound until the clip, where its value is the post's -55 and its gradient 0; the case's expectations
hold."""

from __future__ import annotations

import math

import pytest
import torch

from failbench.cases.binary_ce_labels.model import KERAS_EPSILON, keras_binary_crossentropy, load

# the clipped output's logit in float32, where Keras computes it: 1 - 1e-7 rounds to 1 - 2^-23
# (0.99999988), so log(o / (1 - o)) = log(0.99999988 / 1.1920929e-7) = 15.942
_CLIP = torch.tensor(1 - KERAS_EPSILON, dtype=torch.float32)
CLIP_LOGIT = float(torch.log(_CLIP / (1 - _CLIP)))


def _loss_and_grad(logit: float, label: int) -> tuple[float, float]:
    """The loss of the sigmoid output of `logit`, and its gradient with respect to the logit."""
    z = torch.tensor([[logit]], requires_grad=True)
    loss = keras_binary_crossentropy(torch.sigmoid(z), torch.tensor([label]))
    loss.sum().backward()
    return float(loss.detach()), float(z.grad)


def test_a_label_above_one_pulls_the_output_up_until_the_clip_and_no_further():
    losses = [_loss_and_grad(z, 5)[0] for z in (0.0, 5.0, 10.0, 16.0)]
    assert losses == sorted(losses, reverse=True)  # ever lower as the output climbs: no minimum
    assert _loss_and_grad(5.0, 5)[1] < 0  # descent raises the logit
    at_clip, grad = _loss_and_grad(20.0, 5)
    assert grad == 0.0  # past the clip nothing moves
    assert math.isclose(at_clip, (1 - 5) * CLIP_LOGIT, rel_tol=1e-5)


def test_labels_zero_and_one_keep_their_ordinary_minimum():
    assert _loss_and_grad(-3.0, 0)[1] > 0 and _loss_and_grad(3.0, 1)[1] < 0


def test_the_loss_of_outputs_at_the_clip_is_the_post_s_minus_55():
    """Every output at the clip: the mean loss is (1 - mean label) x 15.942; MNIST's mean label 4.45
    gives -55.05, the post's -55.03; these digits' ~4.4 about the same."""
    assert abs(CLIP_LOGIT - 15.942) < 1e-3
    fit_y = load(torch.device("cpu"))[1]
    loss = keras_binary_crossentropy(torch.ones(len(fit_y), 1), fit_y).mean()
    assert math.isclose(float(loss), (1 - float(fit_y.float().mean())) * CLIP_LOGIT, rel_tol=1e-5)
    assert -57 < float(loss) < -53


def test_keras_validation_split_keeps_the_last_third():
    fit_x, fit_y, val_x, val_y, test_x, test_y = load(torch.device("cpu"))
    assert (len(fit_y), len(val_y), len(test_y)) == (938, 462, 397)


@pytest.mark.slow
@pytest.mark.grid
def test_quick_profile_expectations_hold_for_the_failure_and_the_cure(quick_expectations):
    """The failure (baseline) and the cure (softmax_head) on the quick grid, 3 seeds."""
    table = quick_expectations("binary_ce_labels", ("baseline", "softmax_head"), seeds=3)
    assert (table["seeds"] == 3).all() and len(table) == 2
