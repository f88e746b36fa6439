"""Amazon SageMaker Debugger's built-in rules, with the defaults of the AWS documentation
(docs.aws.amazon.com/sagemaker/latest/dg/debugger-built-in-rules.html and each rule's page).

Each rule reports independently at each saved step (here: each trace point). UnchangedTensor and
WeightUpdateRatio compare consecutive saved steps; the trace keeps, per traced step, whether a
weight is numpy.allclose to the last traced one and the ratio of the first update after it.
"""

from __future__ import annotations

from failbench.contract import DEAD_RELU, EXPLODING, SATURATION, SLOW_CONVERGENCE, VANISHING_GRADIENT
from failbench.detectors.base import QUIET, Finding, Rule, Tool, abstain, fire
from failbench.trace_reader import View, any_layer, first

SOURCE = "docs.aws.amazon.com/sagemaker/latest/dg/"
LAYER = 0.5  # DeadRelu / SaturatedActivation threshold_layer 50.0 (%); threshold_inactivity 1.0 (%) is in the trace
VANISHING = 1e-7  # VanishingGradient threshold 0.0000001 (mean |g|)
VARIANCE_RATIO, DISTRIBUTION_RANGE, INIT_STEPS = (
    10.0,
    0.001,
    10,
)  # PoorWeightInitialization threshold, distribution_range, steps
LARGE, SMALL = 10.0, 1e-8  # WeightUpdateRatio large_threshold, small_threshold
LOSS_STEPS, DIFF_PERCENT = 10, 0.1  # LossNotDecreasing num_steps 10, diff_percent 0.1 (%)
UNCHANGED_STEPS = 3  # UnchangedTensor num_steps 3 (rtol 1e-5, atol 1e-8 are in the trace)


def dead_relu(view: View) -> Finding:
    relus = view.with_activation("relu")
    if not relus:
        return abstain("no ReLU layer")
    step = first(any_layer(view.stat("unit_active_lt1", relus), lambda t: t > LAYER))
    return fire(step, "> 50% of ReLUs active < 1%") if step is not None else QUIET


def saturated_activation(view: View) -> Finding:
    layers = view.with_activation("tanh", "sigmoid", "hardtanh")
    if not layers:
        return abstain("no tanh or sigmoid layer")
    step = first(any_layer(view.stat("unit_inbounds_lt1", layers), lambda t: t > LAYER))
    return fire(step, "> 50% of units saturated") if step is not None else QUIET


def vanishing_gradient(view: View) -> Finding:
    table = view.stat("g_absmean", view.weighted())
    if table.empty:
        return abstain("no gradient recorded")
    step = first(any_layer(table, lambda t: t < VANISHING))
    return fire(step, "mean |g| < 1e-7") if step is not None else QUIET


def exploding_tensor(view: View) -> Finding:
    step = view.nonfinite_at()
    return fire(step, "NaN or inf") if step is not None else QUIET


def poor_weight_initialization(view: View) -> Finding:
    """In the first 10 steps: the variance of the ReLU inputs differs by > 10x between layers, or
    the 5th-95th percentile range of a gradient is < 0.001. (Its third test, the loss over the
    first `patience` steps, needs every step's loss; the trace has log-spaced steps.)"""
    relus = view.with_activation("relu")
    early = [s for s in view.steps if s <= INIT_STEPS]
    if not early:
        return abstain("no traced step in the first 10")
    if len(relus) >= 2:
        var = view.stat("pre_std", relus).loc[lambda t: t.index <= INIT_STEPS] ** 2
        ratio = var.max(axis=1) / var.min(axis=1)
        if (step := first(ratio > VARIANCE_RATIO)) is not None:
            return fire(step, "ReLU input variances differ > 10x")
    spread = view.stat("g_range90", view.weighted()).loc[lambda t: t.index <= INIT_STEPS]
    step = first(any_layer(spread, lambda t: t < DISTRIBUTION_RANGE))
    return fire(step, "gradient 5-95% range < 0.001") if step is not None else QUIET


def _update_ratio(view: View):
    table = view.stat("upd_ratio", view.weighted())
    return None if table.empty or table.isna().all().all() else table


def updates_large(view: View) -> Finding:
    table = _update_ratio(view)
    if table is None:
        return abstain("no weight update recorded")
    step = first(any_layer(table, lambda t: t > LARGE))
    return fire(step, "update/weight > 10") if step is not None else QUIET


def updates_small(view: View) -> Finding:
    table = _update_ratio(view)
    if table is None:
        return abstain("no weight update recorded")
    step = first(any_layer(table, lambda t: t < SMALL))
    return fire(step, "update/weight < 1e-8") if step is not None else QUIET


def loss_not_decreasing(view: View) -> Finding:
    """Every num_steps: the loss against the loss at a step >= num_steps behind; a fall of less
    than diff_percent % fires."""
    loss = view.scalar("loss").dropna()
    if loss.empty:
        return abstain("no loss")
    checked = None
    for step, value in loss.items():
        if checked is not None and step < checked + LOSS_STEPS:
            continue
        behind = loss[loss.index <= step - LOSS_STEPS]
        if behind.empty:
            continue
        old = behind.iloc[-1]
        checked = step
        if old - value < DIFF_PERCENT / 100 * abs(old):
            return fire(step, "loss fell by < 0.1% over 10 steps")
    return QUIET


def all_zero(view: View) -> Finding:
    """Any recorded tensor entirely zero: activations, gradients, weights."""
    steps = [
        first(any_layer(view.stat("act_zero"), lambda t: t >= 1.0)),
        first(any_layer(view.stat("g_zero"), lambda t: t >= 1.0)),
        first(any_layer(view.stat("w_norm"), lambda t: t == 0)),
    ]
    steps = [s for s in steps if s is not None]
    return fire(min(steps), "a tensor is all zero") if steps else QUIET


def unchanged_tensor(view: View) -> Finding:
    table = view.stat("w_unchanged", view.weighted())
    if table.empty:
        return abstain("no weight recorded twice")
    same = table.fillna(0) >= 1
    run = UNCHANGED_STEPS - 1  # 3 saved steps = 2 consecutive comparisons
    for i in range(run - 1, len(same)):
        if same.iloc[i + 1 - run : i + 1].all().any():
            return fire(same.index[i], "a weight allclose over 3 saved steps")
    return QUIET


TOOL = Tool(
    "SageMaker Debugger",
    (
        Rule("DeadRelu", DEAD_RELU, dead_relu, SOURCE + "dead-relu.html"),
        Rule("SaturatedActivation", SATURATION, saturated_activation, SOURCE + "saturated-activation.html"),
        Rule("VanishingGradient", VANISHING_GRADIENT, vanishing_gradient, SOURCE + "vanishing-gradient.html"),
        Rule("ExplodingTensor", EXPLODING, exploding_tensor, SOURCE + "exploding-tensor.html"),
        Rule(
            "PoorWeightInitialization",
            "poor_initialization",
            poor_weight_initialization,
            SOURCE + "poor-weight-initialization.html",
        ),
        Rule("WeightUpdateRatio (large)", EXPLODING, updates_large, SOURCE + "weight-update-ratio.html"),
        Rule("WeightUpdateRatio (small)", SLOW_CONVERGENCE, updates_small, SOURCE + "weight-update-ratio.html"),
        Rule("LossNotDecreasing", SLOW_CONVERGENCE, loss_not_decreasing, SOURCE + "loss-not-decreasing.html"),
        Rule("AllZero", "all_zero", all_zero, SOURCE + "all-zero.html"),
        Rule("UnchangedTensor", SLOW_CONVERGENCE, unchanged_tensor, SOURCE + "unchanged-tensor.html"),
    ),
)
