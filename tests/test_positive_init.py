"""positive_init: the post's hand-written backpropagation is the gradient of its error, its
all-positive init puts every hidden unit on the sigmoid's flat tail for every digit, a constant
output errs by 0.45, and the case's expectations hold."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from failbench.cases.positive_init.model import (
    N_CLASSES,
    Params,
    flat_share,
    forward,
    gradients,
    init_params,
    load,
    total_error,
)

CPU = torch.device("cpu")


def _params(init: str) -> Params:
    torch.manual_seed(0)
    return init_params(init, 15, CPU)


@pytest.mark.parametrize("loss", ["squared", "cross_entropy"])
def test_the_hand_written_backward_is_autograd_s_gradient(loss):
    p = _params("centred")
    x, y = load(CPU)[0][:20], load(CPU)[1][:20]
    leaves = Params(*(t.clone().requires_grad_() for t in p.tensors()))
    out = forward(leaves, x)[2]
    if loss == "squared":
        value = total_error(out, y).mean()
    else:
        value = F.binary_cross_entropy(out, F.one_hot(y, N_CLASSES).float(), reduction="none").sum(1).mean()
    value.backward()
    grads, _ = gradients(p, x, y, loss)
    for mine, auto in zip(grads.tensors(), leaves.tensors()):
        torch.testing.assert_close(mine, auto.grad, rtol=1e-4, atol=1e-6)


def test_the_post_s_init_puts_every_hidden_unit_on_the_flat_tail_for_every_digit():
    train_x = load(CPU)[0]
    pre, hidden, _ = forward(_params("post"), train_x)
    assert float(pre.min()) > 0  # all-positive weights on non-negative pixels
    assert flat_share(hidden) > 0.99
    assert flat_share(forward(_params("centred"), train_x)[1]) < 0.1


def test_a_constant_output_errs_by_half_the_label_variance():
    """The symptom's 0.44: the best constant output (the class frequencies) errs by
    1/2 sum_j p_j (1 - p_j), 0.45 for 10 balanced classes."""
    y = load(CPU)[1]
    freq = torch.bincount(y, minlength=N_CLASSES).float() / len(y)
    best = total_error(freq.expand(len(y), -1), y).mean()
    torch.testing.assert_close(best, 0.5 * (freq * (1 - freq)).sum())
    assert 0.44 < float(best) < 0.46
    assert float(total_error(freq.expand(len(y), -1) + 0.05, y).mean()) > float(best)


@pytest.mark.slow
@pytest.mark.grid
def test_quick_profile_expectations_hold_for_the_failure_and_the_cure(quick_expectations):
    """The failure (baseline) and the post's cure (centred_init) on the quick grid, 3 seeds."""
    table = quick_expectations("positive_init", ("baseline", "centred_init"), seeds=3)
    assert (table["seeds"] == 3).all() and len(table) == 2
