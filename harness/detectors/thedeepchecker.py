"""TheDeepChecker (Ben Braiek & Khomh, TOSEM 2022), thedeepchecker/thedeepchecker,
deep_checker/config/settings.yaml (OverfitCheck) with the checks of deep_checker/hooks.py.

It checks every `period` = 10 iterations from iteration `start` = 10 on, and reports every check
that fails. Its gradient, weight and update-ratio buffers append every iteration (hooks.py): those
rules read the trace's periods (trace.Period, the 10 iterations from a traced step) where a hooked
optimizer made them, else the traced points (a hand-written case's optimizer: from step 10, windows
of 5 points). Its loss checks read the loss of every logged step (a period's mean loss, in the tool),
in windows of 5. Activations: the dead
check for units other than tanh/sigmoid, the saturation check for those; an activation its source
does not list (hard tanh) by neither, as there. Its thresholds are those of its OverfitCheck, which
trains one fixed batch of 50 samples for 200 iterations; here they judge each case's whole run, and
its column is named so ("its thresholds on whole runs").
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from failbench.contract import CONSTANT_OUTPUT, DEAD_RELU, EXPLODING, SATURATION, SLOW_CONVERGENCE, VANISHING_GRADIENT
from failbench.detectors.base import QUIET, Finding, Rule, Tool, abstain, fire
from failbench.trace_reader import View, any_layer, first

SOURCE = "thedeepchecker deep_checker/config/settings.yaml"
START = 10  # OverfitCheck.start
WINDOW = 5  # window_size of Gradient.Vanishing/Exploding, Weight.Diverging, Loss.NonDecreasing/Diverging, patience 5
DEAD_UNITS = 0.5  # Activation.Dead.neurons_ratio_max_thresh (a unit: 95th pct of |a| < 1e-5, in the trace)
SAT_UNITS = 0.5  # Activation.Saturation.neurons_ratio_max_thresh (a unit: ro_B > 0.85, in the trace)
STD_MIN, STD_MAX, F_CRIT = (
    0.5,
    2.0,
    2.70554,
)  # Activation.Distribution; f_test_alpha 0.1 -> F critical 2.70554 (metrics.py)
VANISH_MAV, VANISH_RATE = 1e-6, 0.5  # Gradient.Vanishing: mav_min_thresh, dec_rate_min_thresh
EXPLODE_MAV, EXPLODE_RATE = 1e6, 2  # Gradient.Exploding: mav_max_thresh, inc_rate_max_thresh
UPDATE_HIGH, UPDATE_LOW = -1, -4  # Gradient.Unstable_Learning: log10 of mean|dw| / mean|w|
NEGATIVE = 0.95  # Weight.Negative.ratio_max_thresh
DEAD_WEIGHTS = 0.95  # Weight.Dead.ratio_max_thresh (|w| < 1e-5, in the trace)
W_DIV_MAV, W_DIV_RATE = 1e8, 2  # Weight.Diverging: mav_max_thresh, inc_rate_max_thresh
DECREASE = 0.05  # Loss.NonDecreasing.decr_percentage
LOSS_DIV_RATE = 2  # Loss.Diverging.incr_abs_rate_max_thresh
FLUCT_WINDOW, SMOOTHNESS = 50, 0.5  # Loss.Fluctuating: window_size, smoothness_ratio_min_thresh
REG_RATE = 2  # Loss.Overwhelming_Reg.growth_rate_max_thresh


def _checked(table):
    return table[table.index >= START]


def _layer_rule(stat: str, layers_of, condition, why: str):
    def check(view: View) -> Finding:
        layers = layers_of(view)
        if not layers:
            return abstain("no such layer")
        step = first(any_layer(_checked(view.stat(stat, layers)), condition))
        return fire(step, why) if step is not None else QUIET

    return check


def _hidden_nonsaturating(view):
    return [n for n in view.with_activation("relu", "leaky")]


def _saturating(view):
    # its `is_activation_function` lists ELU, LeakyReLU, ReLU6, SELU, Tanh, Sigmoid and ReLU: an
    # activation it does not know (hard tanh) is hooked by no activation check, so none reads it here
    return view.with_activation("tanh", "sigmoid")


def _trend(table, mav_hit, rate_hit):
    """hooks.py check_vanishing/exploding_gradient, check_divergence: the latest mean |x| past its
    bound, or every ratio of consecutive values over the last WINDOW checks past its rate."""
    values = table.to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        bound = np.asarray(mav_hit(values), dtype=bool).any(axis=1)
        rates = values[1:] / values[:-1]
        ok = np.asarray(rate_hit(rates), dtype=bool) & np.isfinite(rates)
    for i, step in enumerate(table.index):
        if bound[i]:
            return int(step)
        if i + 1 >= WINDOW and ok[i + 1 - WINDOW : i].all(axis=0).any():
            return int(step)
    return None


def activation_distribution(view: View) -> Finding:
    """check_acts_distribution: the std of a layer's activations outside [0.5, 2], unless an
    F-test (variance against the bound's, alpha 0.1) cannot tell them apart."""
    layers = [n for n in view.layers if view.activation[n] != "none"]
    if not layers:
        return abstain("no activation layer")
    table = _checked(view.stat("out_std", layers))
    std = table.to_numpy(dtype=float)
    ref = np.where(std < STD_MIN, STD_MIN, STD_MAX)  # the bound it is compared with
    with np.errstate(invalid="ignore", divide="ignore"):
        f = np.maximum(std**2, ref**2) / np.minimum(std**2, ref**2)
        bad = ((std < STD_MIN) | (std > STD_MAX)) & (f > F_CRIT)
    step = first(pd.Series(bad.any(axis=1), index=table.index))
    return fire(step, "activation std far from [0.5, 2]") if step is not None else QUIET


def _period_rule(view: View, last: str, rate: str, hit_last, hit_rate):
    """At each period's end (trace.Period): the last iteration's mean |x| past its bound, or every
    rate of the last RATE_WINDOW iterations past its rate (the min/max of the rates stands for all).
    None when the trace has no periods (a hand-written case's optimizer: no hook sees its steps)."""
    layers = view.weighted()
    values, rates = view.stat(last, layers), view.stat(rate, layers)
    if values.empty or not values.notna().any().any():
        return None
    hits = any_layer(values, hit_last) | any_layer(rates.reindex(values.index), hit_rate)
    return first(hits), True


def _gradient_trend(view: View, mav_hit, rate_hit, rate: str, period_rate_hit) -> int | None:
    found = _period_rule(view, "g_absmean_last", rate, mav_hit, period_rate_hit)
    if found is not None:
        return found[0]
    table = _checked(view.stat("g_absmean", view.weighted()))
    return _trend(table, mav_hit, rate_hit) if table.shape[1] else None


def vanishing_gradient(view: View) -> Finding:
    """Per iteration over each period where the trace has them, else over the traced points."""
    step = _gradient_trend(
        view, lambda r: r < VANISH_MAV, lambda x: x <= VANISH_RATE, "g_rate_max", lambda t: t <= VANISH_RATE
    )
    return fire(step, "mean |g| < 1e-6 or halving") if step is not None else QUIET


def exploding_gradient(view: View) -> Finding:
    step = _gradient_trend(
        view, lambda r: r > EXPLODE_MAV, lambda x: x >= EXPLODE_RATE, "g_rate_min", lambda t: t >= EXPLODE_RATE
    )
    return fire(step, "mean |g| > 1e6 or doubling") if step is not None else QUIET


def weights_diverging(view: View) -> Finding:
    found = _period_rule(view, "w_absmean_last", "w_rate_min", lambda r: r > W_DIV_MAV, lambda t: t >= W_DIV_RATE)
    if found is not None:
        step = found[0]
    else:
        table = _checked(view.stat("w_absmean", view.weighted()))
        step = _trend(table, lambda r: r > W_DIV_MAV, lambda x: x >= W_DIV_RATE) if table.shape[1] else None
    return fire(step, "mean |w| > 1e8 or doubling") if step is not None else QUIET


def _log_update(view: View):
    """The period's mean log ratio (trace.Period, as hooks.py check_unstable_training judges it) where
    the trace has periods; else the traced step's own ratio, a period of one iteration (log10, or 0
    for no update)."""
    return view.memo("tdc_log_update", lambda: _compute_log_update(view))


def _compute_log_update(view: View):
    period = view.stat("upd_log_period", view.weighted())
    if not period.empty and period.notna().to_numpy().any():
        return period
    ratio = view.stat("upd_absmean_ratio", view.weighted())
    values = ratio.to_numpy(dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(values > 0, np.log10(values), 0.0)
    logs[np.isnan(values)] = np.nan
    return pd.DataFrame(logs, index=ratio.index, columns=ratio.columns)


def updates_too_large(view: View) -> Finding:
    log = _log_update(view)
    if log.empty or log.isna().all().all():
        return abstain("no weight update recorded")
    step = first(any_layer(log, lambda t: t > UPDATE_HIGH))
    return fire(step, "log10 update ratio > -1") if step is not None else QUIET


def updates_too_small(view: View) -> Finding:
    """Below -4, or a mean log ratio of exactly 0 ('w_untrained': no update, by hooks.py's log-0 convention)."""
    log = _log_update(view)
    if log.empty or log.isna().all().all():
        return abstain("no weight update recorded")
    step = first(any_layer(log, lambda t: (t < UPDATE_LOW) | (t == 0)))
    return fire(step, "log10 update ratio < -4, or no update") if step is not None else QUIET


def _loss(view: View):
    return view.scalar("loss").dropna()


def _every_pair_in_window(hits: np.ndarray) -> np.ndarray:
    """hits[j]: a test on the pair (j, j + 1). Per check i >= WINDOW - 1: do all WINDOW - 1 pairs
    of the window ending at i pass?"""
    pairs = WINDOW - 1
    if len(hits) < pairs:
        return np.zeros(0, dtype=bool)
    counts = np.convolve(hits.astype(int), np.ones(pairs, dtype=int), mode="valid")
    return counts == pairs  # index k: the window ending at check k + pairs


def loss_not_decreasing(view: View) -> Finding:
    """check_loss_curve: every relative decrease over the last 5 losses below 5%."""
    loss = _loss(view)
    if loss.empty:
        return abstain("no loss")
    values = loss.to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):  # a loss of exactly 0: NaN, never below 5%
        small = (values[:-1] - values[1:]) / values[:-1] < DECREASE
    hit = np.flatnonzero(_every_pair_in_window(small))
    return fire(loss.index[hit[0] + WINDOW - 1], "loss falls by < 5% per check") if len(hit) else QUIET


def loss_diverging(view: View) -> Finding:
    """check_loss_curve: the last 5 losses over the minimum so far, each >= 2x the one before. The
    minimum cancels from each ratio unless it is 0 (then every scaled loss is inf or NaN: no
    doubling)."""
    loss = _loss(view)
    if loss.empty:
        return abstain("no loss")
    values = loss.to_numpy()
    best = np.minimum.accumulate(values)
    with np.errstate(divide="ignore", invalid="ignore"):
        doubling = values[1:] / values[:-1] >= LOSS_DIV_RATE
    windows = _every_pair_in_window(doubling) & (best[WINDOW - 1 :] != 0)
    hit = np.flatnonzero(windows)
    return fire(loss.index[hit[0] + WINDOW - 1], "loss doubling against its minimum") if len(hit) else QUIET


def smoothness(values) -> float:
    """deep_checker/metrics.py smoothness: 1 - the share of sign changes of the loss's slope."""
    data = np.asarray(values, dtype=float)
    if len(data) < 1:
        return 1.0
    with np.errstate(divide="ignore", invalid="ignore"):  # 0/0 is NaN: not a rise
        rises = data[1:] / data[:-1] > 1.0
    changes = np.count_nonzero(np.abs(np.diff(rises)))
    return (len(data) - changes) / len(data)


def loss_fluctuating(view: View) -> Finding:
    loss = _loss(view)
    if loss.empty:
        return abstain("no loss")
    hit = np.flatnonzero(_smoothness_of_windows(loss.to_numpy()) < SMOOTHNESS)
    return fire(loss.index[hit[0]], "loss slope changes sign on > half the checks") if len(hit) else QUIET


def _smoothness_of_windows(data: np.ndarray) -> np.ndarray:
    """`smoothness` of the last FLUCT_WINDOW values up to each check, all checks at once: the sign
    changes of a window are a difference of one cumulative count."""
    n = len(data)
    with np.errstate(divide="ignore", invalid="ignore"):
        rises = data[1:] / data[:-1] > 1.0
    changed = np.concatenate([[0], np.cumsum(rises[1:] != rises[:-1])])  # changed[k]: changes in pairs < k
    end = np.arange(n)
    start = np.maximum(0, end + 1 - FLUCT_WINDOW)
    length = end - start + 1
    # the window's changes: between its rise pairs start..end-1, i.e. change indices start..end-2
    upto, since = changed[np.maximum(end - 1, 0)], changed[np.minimum(start, len(changed) - 1)]
    changes = np.where(end - 1 > start, upto - since, 0)
    return (length - changes) / length


def constant_output(view: View) -> Finding:
    """check_outputs: an output whose variance across the batch has never been > 0, for 5 checks."""
    var = view.scalar("out_var_min")
    if var.empty:
        return abstain("no output recorded")
    constant = var.cummax() == 0  # status |= var > 0: once varied, never constant again
    for i in range(WINDOW - 1, len(constant)):
        if constant.iloc[i + 1 - WINDOW : i + 1].all():
            return fire(constant.index[i], "an output never varies across the batch")
    return QUIET


def overwhelming_regularization(view: View) -> Finding:
    """check_overwhelming_regularization: |grad of the regulariser| / |grad of the data loss| >= 2
    on the last 5 checks. Abstains where the trace has no explicit regulariser."""
    reg = view.stat("reg_grad_norm")
    if reg.empty or reg.isna().all().all():
        return abstain("no regulariser's gradient recorded")
    ratio = reg / view.stat("g_norm", list(reg.columns)).replace(0, math.nan)
    high = ratio >= REG_RATE
    for i in range(WINDOW - 1, len(high)):
        if high.iloc[i + 1 - WINDOW : i + 1].all().any():
            return fire(high.index[i], "the regulariser's gradient >= 2x the loss's")
    return QUIET


def numerical_instability(view: View) -> Finding:
    step = view.nonfinite_at()
    return fire(step, "NaN or inf") if step is not None else QUIET


TOOL = Tool(
    "TheDeepChecker (its thresholds on whole runs)",
    (
        Rule(
            "dead_activations",
            DEAD_RELU,
            _layer_rule("unit_dead_p95", _hidden_nonsaturating, lambda t: t > DEAD_UNITS, "most units dead"),
            SOURCE + " Activation.Dead",
        ),
        Rule(
            "saturated_activations",
            SATURATION,
            _layer_rule("unit_sat_ro", _saturating, lambda t: t > SAT_UNITS, "most units saturated"),
            SOURCE + " Activation.Saturation",
        ),
        Rule(
            "activation_distribution",
            "activation_distribution",
            activation_distribution,
            SOURCE + " Activation.Distribution",
        ),
        Rule("vanishing_gradient", VANISHING_GRADIENT, vanishing_gradient, SOURCE + " Gradient.Vanishing"),
        Rule("exploding_gradient", EXPLODING, exploding_gradient, SOURCE + " Gradient.Exploding"),
        Rule("updates_too_large", EXPLODING, updates_too_large, SOURCE + " Gradient.Unstable_Learning -1"),
        Rule("updates_too_small", SLOW_CONVERGENCE, updates_too_small, SOURCE + " Gradient.Unstable_Learning -4"),
        Rule(
            "negative_weights",
            "weight_sign",
            _layer_rule("w_neg", lambda v: v.weighted(), lambda t: t > NEGATIVE, "> 95% of weights negative"),
            SOURCE + " Weight.Negative",
        ),
        Rule(
            "dead_weights",
            "dead_weights",
            _layer_rule("w_small", lambda v: v.weighted(), lambda t: t > DEAD_WEIGHTS, "> 95% of |w| < 1e-5"),
            SOURCE + " Weight.Dead",
        ),
        Rule("diverging_weights", EXPLODING, weights_diverging, SOURCE + " Weight.Diverging"),
        Rule("loss_not_decreasing", SLOW_CONVERGENCE, loss_not_decreasing, SOURCE + " Loss.NonDecreasing"),
        Rule("loss_diverging", EXPLODING, loss_diverging, SOURCE + " Loss.Diverging"),
        Rule("loss_fluctuating", "oscillation", loss_fluctuating, SOURCE + " Loss.Fluctuating"),
        Rule("constant_outputs", CONSTANT_OUTPUT, constant_output, SOURCE + " Activation.Output.patience 5"),
        Rule(
            "overwhelming_regularization",
            "overwhelming_regularization",
            overwhelming_regularization,
            SOURCE + " Loss.Overwhelming_Reg",
        ),
        Rule("numerical_instability", EXPLODING, numerical_instability, SOURCE + " Numerical_Instability"),
    ),
)
