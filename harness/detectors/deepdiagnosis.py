"""DeepDiagnosis (Wardat et al., ICSE 2022), DeepDiagnosis/ICSE2022, callback/callbacks.py.

`mapFaluireToFix.on_epoch_end` checks once per epoch (here: per trace point) and stops training at
the first symptom it finds, so its diagnosis is its first alarm. N = 5 checks make its window for
unchanged tensors and loss; FRQ = 20 for accuracy. Its gradient and weight checks look at dense
layers only (`list_name[layer].find('dense')`): conv layers are not checked. Hard tanh is read as
tanh (the tool names only 'tanh' and 'sigmoid').
"""

from __future__ import annotations

import numpy as np

from failbench.contract import DEAD_RELU, EXPLODING, SATURATION, SLOW_CONVERGENCE, VANISHING_GRADIENT
from failbench.detectors.base import QUIET, Finding, Rule, Tool, abstain, fire
from failbench.trace_reader import View, any_layer, first

SOURCE = "DeepDiagnosis/ICSE2022 callback/callbacks.py"
N, FRQ = 5, 20  # on_epoch_end: N = 5, FRQ = 20
DEAD = 0.7  # threshold_layer_1: share of a ReLU layer's outputs <= 0
SATURATED = (
    0.5  # threshold_layer: share of a tanh/sigmoid layer's inputs beyond +-5 (the bound is in the trace's sat_bound)
)
VANISHING = 1e-7  # threshold_VG: mean |dL/dW| of a dense layer


def numerical_error(view: View) -> Finding:
    """identifyNumerical: a layer's mean output, a dense layer's mean weight gradient, a layer's
    mean weight or the loss is NaN, inf, or exactly 0 (the tool counts 0 as a numerical error)."""
    dense = view.weighted("linear")
    steps = [
        s
        for s in (
            view.nonfinite_at(),
            first(any_layer(view.stat("out_mean"), lambda t: t == 0)),
            first(any_layer(view.stat("pre_mean"), lambda t: t == 0)),
            first(any_layer(view.stat("g_mean", dense), lambda t: t == 0)),
            first(any_layer(view.stat("w_mean"), lambda t: t == 0)),
        )
        if s is not None
    ]
    return fire(min(steps), "NaN, inf or 0") if steps else QUIET


def dead_node(view: View) -> Finding:
    """identifyDead, checked on the last epoch only (`batch == self.epoch - 1`)."""
    relus = view.with_activation("relu")
    if not relus:
        return abstain("no ReLU layer")
    table = view.stat("act_nonpos", relus)
    last = table.index.max()
    return fire(last, "ReLU outputs <= 0") if (table.loc[last] >= DEAD).any() else QUIET


def saturation(view: View) -> Finding:
    """identifySaturated, every N checks, on the input of a tanh/sigmoid layer."""
    layers = view.with_activation("tanh", "sigmoid", "hardtanh")
    if not layers:
        return abstain("no tanh or sigmoid layer")
    table = view.stat("sat_bound", layers)
    every_n = table.iloc[N - 1 :: N]
    return (
        fire(step, "|x| >= 5 on most inputs")
        if (step := first(any_layer(every_n, lambda t: t > SATURATED))) is not None
        else QUIET
    )


def vanishing_gradient(view: View) -> Finding:
    dense = view.weighted("linear")
    if not dense:
        return abstain("no dense layer (the tool checks dense layers only)")
    step = first(any_layer(view.stat("g_absmean", dense), lambda t: t < VANISHING))
    return fire(step, "mean |dL/dW| < 1e-7") if step is not None else QUIET


def _unchanged(table) -> int | None:
    """meanResult over the last N values, every N checks: mean == max, i.e. all N equal. The
    windows are the non-overlapping runs of N checks, judged at once (a (windows, N, columns) array)."""
    values = table.to_numpy(dtype=float) if len(table) else np.empty((0, 0))
    if values.ndim == 1:
        values = values[:, None]
    windows = len(values) // N
    if not windows or not values.shape[1]:
        return None
    blocks = values[: windows * N].reshape(windows, N, values.shape[1])
    known = ~np.isnan(blocks).any(axis=1)
    with np.errstate(invalid="ignore"):
        same = (blocks.sum(axis=1) / N == blocks.max(axis=1)) & known
    hit = np.flatnonzero(same.any(axis=1))
    return int(table.index[(hit[0] + 1) * N - 1]) if len(hit) else None


def unchanged_tensor(view: View) -> Finding:
    """Mean output of a layer (not the last), mean weight or mean weight gradient of a dense
    layer the same over N checks."""
    dense = view.weighted("linear")
    outputs = view.stat("out_mean", view.layers[:-1])
    steps = [
        s
        for s in (_unchanged(outputs), _unchanged(view.stat("w_mean", dense)), _unchanged(view.stat("g_mean", dense)))
        if s is not None
    ]
    return fire(min(steps), "unchanged over 5 checks") if steps else QUIET


def loss_not_decreasing(view: View) -> Finding:
    """meanResult over the last N losses every N checks; the accuracy over FRQ checks, or an
    accuracy of exactly 0 ('Invalid accuracy')."""
    loss = view.scalar("loss")
    if loss.empty:
        return abstain("no loss")
    steps = [_unchanged(loss.to_frame())]
    acc = view.scalar("train_accuracy")
    if not acc.empty:
        steps.append(first(acc == 0))
        for end in range(FRQ, len(acc) + 1, FRQ):
            window = acc.iloc[end - FRQ : end]
            if np.mean(window) == np.max(window):
                steps.append(int(acc.index[end - 1]))
                break
    steps = [s for s in steps if s is not None]
    return fire(min(steps), "loss (or accuracy) unchanged") if steps else QUIET


TOOL = Tool(
    "DeepDiagnosis",
    (
        Rule("numerical_error", EXPLODING, numerical_error, SOURCE + " identifyNumerical"),
        Rule("dead_node", DEAD_RELU, dead_node, SOURCE + " identifyDead, threshold_layer_1 0.7"),
        Rule("saturated_activation", SATURATION, saturation, SOURCE + " identifySaturated, +-5, threshold_layer 0.5"),
        Rule("vanishing_gradient", VANISHING_GRADIENT, vanishing_gradient, SOURCE + " identifyVanishingGradient 1e-7"),
        Rule("unchanged_tensor", SLOW_CONVERGENCE, unchanged_tensor, SOURCE + " meanResult, N 5"),
        Rule("loss_not_decreasing", SLOW_CONVERGENCE, loss_not_decreasing, SOURCE + " meanResult, N 5, FRQ 20"),
    ),
    reports="first_rule",
)
