"""nan_cross_entropy: the post's loss is NaN exactly where float32's softmax underflows to 0, its two
fixes are finite there, and the case's expectations hold."""

from __future__ import annotations

import math

import pytest
import torch

from failbench.cases.nan_cross_entropy.model import epsilon_loss, load, logit_gap, logits_loss, post_loss, zero_share


def _logits(gap: float) -> torch.Tensor:
    """One digit of class 0: its own logit `gap` above the lowest, the rest in between."""
    return torch.tensor([[gap, 0.5 * gap, 0.0, *([0.25 * gap] * 7)]], dtype=torch.float32)


LABEL = torch.tensor([0])
# float32's smallest subnormal is 2**-149 = 1.4e-45: exp(-x) rounds to 0 below half of it, past x = 150 ln 2 = 103.97
UNDERFLOW = 150 * math.log(2)


@pytest.mark.parametrize("gap", [50.0, 100.0, 103.9])
def test_below_the_underflow_every_loss_is_finite_and_the_three_agree(gap):
    logits = _logits(gap)
    assert zero_share(logits) == 0.0
    torch.testing.assert_close(post_loss(logits, LABEL), logits_loss(logits, LABEL), rtol=1e-4, atol=1e-6)
    assert torch.isfinite(epsilon_loss(logits, LABEL))


@pytest.mark.parametrize("gap", [104.0, 200.0])
def test_past_the_underflow_the_post_s_loss_is_nan_and_its_fixes_are_not(gap):
    logits = _logits(gap)
    assert gap > UNDERFLOW and zero_share(logits) > 0  # a probability of exactly 0
    assert math.isnan(float(post_loss(logits, LABEL)))  # 0 * log(0) = 0 * -inf
    assert math.isfinite(float(logits_loss(logits, LABEL)))
    assert math.isfinite(float(epsilon_loss(logits, LABEL)))
    assert logit_gap(logits) == gap


def test_the_post_s_loss_sums_the_batch():
    logits = torch.randn(5, 10, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(5)
    each = torch.stack([post_loss(logits[i : i + 1], labels[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(post_loss(logits, labels), each.sum())


def test_the_split_is_fixed_and_disjoint():
    a, b = load(torch.device("cpu")), load(torch.device("cpu"))
    assert [len(t) for t in a] == [1400, 1400, 397, 397]
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    train = {tuple(x.flatten().tolist()) for x in a[0]}
    assert not any(tuple(x.flatten().tolist()) in train for x in a[2][:50])  # digits are unique images


@pytest.mark.slow
@pytest.mark.grid
def test_quick_profile_expectations_hold_for_the_failure_and_the_cure(quick_expectations):
    """The failure (baseline) and the post's cure (logits_loss) on the quick grid, 3 seeds."""
    table = quick_expectations("nan_cross_entropy", ("baseline", "logits_loss"), seeds=3)
    assert (table["seeds"] == 3).all() and len(table) == 2
