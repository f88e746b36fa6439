"""AUTOTRAINER (Zhang et al., ICSE 2021), shiningrain/AUTOTRAINER, AutoTrainer/utils/monitor.py at
commit 5175f6c (its TF2 version, with `layer_issue` and `judge_issue`), thresholds from
AutoTrainer/reproduce.py `params`.

`IssueMonitor.determine` runs at every check (an epoch end; reproduce.py checks every 3 epochs by
default). Its features accumulate over the checks: `gradient_issue` counts 'died_relu',
'explode_gradient', 'vanish_gradient'; `layer_issue` sets 'activation_output' (an output row whose
|sum| passes omega_2 + 0.1) and 'abnormal_output' (a hidden layer's mean |output| >= omega_1);
`loss_issue` sets 'nan_loss' (a NaN, or a loss >= 1e3: `check_large_loss`) and, from
`judgment_point` = 30% of the epochs on (less one check gap), the gate: 'not_converge' (best
validation *and* best training accuracy under Theta), 'sc_accuracy' (neither rises by delta
between checks) and 'unstable_loss' (`ol_judge`). `judge_issue` then reports, once (the first
check where its list is not empty; it reports the whole list, a set):
- 'abnormal_data' if 'abnormal_output' (its TODO: "let abnormal be the first");
- with 'nan_loss': 'loss_issue' on a negative loss, else 'explode' if a weight or gradient is NaN;
- when not converged or converging slowly (the gate): 'activation_issue' > 'relu' > 'explode' >
  'vanish' > 'not_converge' (which needs *both* 'not_converge' and 'sc_accuracy');
- independently of the gate, on an oscillating accuracy: 'activation_issue' if the output is
  improper, else 'unstable'.
Left out: `loss_function_issue`, a static check of a Keras loss name against the output's shape
(it reads `model.loss` as a string; our cases' losses are not Keras names).

The gate reads train *and* validation accuracy (`history['acc']`, `history['val_acc']`): without a
validation accuracy the gated rules abstain. TOOL_UNGATED reports the gradient features at the
first check where they count, without the gate: the gate is where the tool avoids false alarms on
runs that learn anyway, and leaving it out shows what the gradient rules see alone.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from failbench.contract import DEAD_RELU, EXPLODING, SLOW_CONVERGENCE, VANISHING_GRADIENT
from failbench.detectors.base import QUIET, Finding, Rule, Tool, abstain, fire
from failbench.trace_reader import View

SOURCE = "shiningrain/AUTOTRAINER AutoTrainer/utils/monitor.py"
BETA_1 = 1e-3  # gradient_issue threshold_low: |g_first| / |g_last| below it ...
BETA_2 = 1e-4  # ... threshold_low_1: and |g_first| below it -> vanish
BETA_3 = 70  # threshold_high: |g_first| / |g_last| above it -> explode
GAMMA = 0.7  # reproduce.py params gamma (threshold_die_1): share of exactly-zero gradients >= it -> relu
# reproduce.py params zeta, eta (ol_judge): accuracy swings >= zeta on >= eta of the checks -> unstable
ZETA, ETA = 0.03, 0.2
DELTA = 0.01  # reproduce.py params delta (sc_threshold): the largest rise of accuracy below it -> slow
THETA = 0.6  # satisfied_acc: best accuracy below it -> not converged (the gate); AutoTrainer/reproduce.py
# params["Theta"] = 0.6, the setting its evaluation is reproduced with (its demos and utils.py use 0.7)
JUDGMENT_POINT = 0.3  # loss_issue: the gate is judged from 30% of the epochs on
OMEGA_1 = 10.0  # reproduce.py params omega_1 (layer_issue input_threshold): mean |hidden output| >= it
OMEGA_2 = 1.0  # reproduce.py params omega_2 (layer_issue acti_threshold): max row |output| sum > it + 0.1
LARGE_LOSS = 1e3  # monitor.py check_large_loss threshold: a loss this large counts as 'nan_loss'


def _gradient_issues(view: View) -> dict[int, str]:
    """monitor.py gradient_issue at each traced check, in determine()'s order: relu, explode, vanish.
    Its zero share counts kernel and bias gradients together; the trace has the kernels' (a bias
    is one value per unit, a few percent of a layer's parameters)."""
    return view.memo("autotrainer_gradient", lambda: _compute_gradient_issues(view))


def _compute_gradient_issues(view: View) -> dict[int, str]:
    layers = view.weighted()
    if not layers:
        return {}
    norm = view.stat("g_norm", layers)
    zero = view.stat("g_zero", layers).reindex(index=norm.index, columns=norm.columns).to_numpy()
    numel = view.stat("numel", layers)
    has_numel = len(numel.index) > 0
    numel = numel.reindex(index=norm.index, columns=norm.columns).to_numpy()
    issues = {}
    norms = norm.to_numpy(dtype=float)
    for row, step in enumerate(norm.index):
        g = norms[row][~np.isnan(norms[row])]
        if not len(g):
            continue
        z, n = zero[row], numel[row]
        counted = z * n
        if has_numel and (~np.isnan(counted)).any() and np.nansum(counted) / n[~np.isnan(z)].sum() >= GAMMA:
            issues[int(step)] = "relu"
            continue
        rate = g[0] / g[-1] if g[-1] > 0 else math.inf
        if rate > BETA_3:
            issues[int(step)] = "explode"
        elif rate < BETA_1 and g[0] < BETA_2:
            issues[int(step)] = "vanish"
    return issues


def diagnose(view: View, gate: bool = True) -> tuple[tuple[str, ...], int | None, str]:
    """The issues AUTOTRAINER reports for a run (judge_issue's list, in its order of appending),
    the check they are found at, or why it abstains (once per view: each rule reads it)."""
    return view.memo(("autotrainer", gate), lambda: _diagnose(view, gate))


def _hidden_abs_mean(view: View) -> pd.Series:
    """Per step: the largest mean |output| over the hidden layers (every layer but the last)."""
    table = view.stat("out_abs_mean")
    hidden = [c for c in table.columns if c != view.layers[-1]] if view.layers else []
    return table[hidden].max(axis=1) if hidden else pd.Series(dtype=float)


def _count(series: pd.Series, step: int) -> int:
    """How many values are logged at or before `step` (the series is sorted by step)."""
    return int(np.searchsorted(series.index.to_numpy(), step, side="right"))


class _Prefixes:
    """max, monitor.py max_delta_acc (the largest rise between consecutive checks, 0 if none) and
    monitor.py ol_judge (local maxima and minima paired in order; a swing >= zeta counts; unstable
    when >= eta of the checks swing) of every prefix of one accuracy curve, from arrays built once
    (a check reads the curve so far; recomputing each prefix is quadratic in the ~100 checks)."""

    def __init__(self, acc: np.ndarray):
        self.acc = acc
        self.best = np.maximum.accumulate(acc) if len(acc) else acc
        # max_delta_acc of the first L values: the largest rise among their L - 1 steps, or 0
        rises = np.diff(acc)
        self.rise = np.concatenate([[0.0], np.maximum.accumulate(np.maximum(rises, 0.0))]) if len(acc) else acc
        # ol_judge: interior point i of a prefix is a peak (dip) by its two neighbours alone, so a
        # prefix of L values has the peaks and dips at i <= L - 2, paired in order
        inner = np.arange(1, len(acc) - 1)
        left, right = acc[inner] - acc[inner - 1], acc[inner] - acc[inner + 1]
        self.peaks = inner[(left >= 0) & (right >= 0)]
        self.dips = inner[(left <= 0) & (right <= 0)]
        pairs = min(len(self.peaks), len(self.dips))
        swings = acc[self.peaks[:pairs]] - acc[self.dips[:pairs]] >= ZETA
        self.swing_counts = np.concatenate([[0], np.cumsum(swings)])

    def oscillates(self, length: int) -> bool:
        peaks = int(np.searchsorted(self.peaks, length - 2, side="right"))
        dips = int(np.searchsorted(self.dips, length - 2, side="right"))
        return bool(self.swing_counts[min(peaks, dips)] >= ETA * length)


def _diagnose(view: View, gate: bool) -> tuple[tuple[str, ...], int | None, str]:
    train, val = view.scalar("train_accuracy").dropna(), view.scalar("val_accuracy").dropna()
    if gate and (train.empty or val.empty):
        return (), None, "no validation accuracy: the accuracy gate cannot be judged"
    loss, nan_at = view.scalar("loss"), view.nonfinite_at()
    output_l1, hidden_abs = view.scalar("out_l1_max").to_dict(), _hidden_abs_mean(view).to_dict()
    gradient = _gradient_issues(view)
    loss_max, loss_min = loss.cummax().to_numpy(), loss.cummin().to_numpy()
    gate_train, gate_val = _Prefixes(train.to_numpy()), _Prefixes(val.to_numpy())
    counted: list[str] = []
    feature = dict.fromkeys(("activation_output", "abnormal_output", "nan_loss", "abnormal_loss"), False)
    total = view.steps[-1] if view.steps else 0
    previous = 0
    for step in view.steps:
        gap, previous = step - previous, step
        nan = nan_at is not None and step >= nan_at  # a recorded divergence: the runner's first non-finite value
        # layer_issue: the output first, then the hidden layers unless the output is improper
        if output_l1.get(step, 0.0) > OMEGA_2 + 0.1:
            feature["activation_output"] = True
        if hidden_abs.get(step, 0.0) >= OMEGA_1 and not feature["activation_output"]:
            feature["abnormal_output"] = True
        issue = None if nan else gradient.get(step)  # a NaN gradient returns before the counts
        if issue and issue not in counted:
            counted.append(issue)
        if not gate:
            if counted:
                return (counted[0],), step, "gradient feature, ungated"
            continue
        seen = _count(loss, step)  # losses logged so far: the largest and smallest of them
        if nan or (seen and loss_max[seen - 1] >= LARGE_LOSS):
            feature["nan_loss"] = True
        if seen and loss_min[seen - 1] < 0:
            feature["abnormal_loss"] = True
        not_converged = slow = unstable = False
        if not feature["nan_loss"] and step >= JUDGMENT_POINT * total - gap:
            n_acc, n_vacc = _count(train, step), _count(val, step)
            if n_acc and n_vacc:
                not_converged = gate_val.best[n_vacc - 1] < THETA and gate_train.best[n_acc - 1] < THETA
                slow = gate_val.rise[n_vacc - 1] < DELTA and gate_train.rise[n_acc - 1] < DELTA
                unstable = gate_train.oscillates(n_acc)
        reported = _judge(feature, counted, nan, not_converged, slow, unstable)
        if reported:
            return reported, step, "judge_issue"
    return (), None, ""


def _judge(feature: dict, counted: list[str], nan: bool, not_converged: bool, slow: bool, unstable: bool):
    """monitor.py judge_issue, branch for branch."""
    issues: list[str] = []
    if feature["abnormal_output"]:
        issues.append("abnormal_data")
    if feature["nan_loss"] or feature["abnormal_loss"]:
        if feature["abnormal_loss"]:
            issues.append("loss_issue")
        elif nan:  # nan_weight or nan_gradient
            issues.append("explode")
    if not_converged or slow:
        if feature["activation_output"]:
            issues.append("activation_issue")
        else:
            found = next((i for i in ("relu", "explode", "vanish") if i in counted), None)
            if found:
                issues.append(found)
            elif not_converged and slow and not feature["abnormal_output"]:
                issues.append("not_converge")
    if unstable:
        issues.append("activation_issue" if feature["activation_output"] else "unstable")
    return tuple(dict.fromkeys(issues))


def _rule(issue: str, gate: bool):
    def check(view: View) -> Finding:
        found, step, why = diagnose(view, gate)
        if not found and why:
            return abstain(why)
        return fire(step, why) if issue in found else QUIET

    return check


# AUTOTRAINER's own labels for what no case class names: unnormalised data, an improper loss or
# output activation.
ABNORMAL_DATA, LOSS_ISSUE, ACTIVATION_ISSUE = "abnormal_data", "loss_issue", "activation_issue"


def _rules(gate: bool) -> tuple[Rule, ...]:
    rules = (
        Rule("abnormal_data", ABNORMAL_DATA, _rule("abnormal_data", gate), SOURCE + " layer_issue omega_1 10"),
        Rule("loss_issue", LOSS_ISSUE, _rule("loss_issue", gate), SOURCE + " loss_issue check_abnormal_value"),
        Rule("activation_issue", ACTIVATION_ISSUE, _rule("activation_issue", gate), SOURCE + " layer_issue omega_2 1"),
        Rule("dying_relu", DEAD_RELU, _rule("relu", gate), SOURCE + " gradient_issue threshold_die_1 0.7"),
        Rule(
            "exploding_gradient",
            EXPLODING,
            _rule("explode", gate),
            SOURCE + " gradient_issue threshold_high 70; loss_issue check_large_loss 1e3",
        ),
        Rule(
            "vanishing_gradient",
            VANISHING_GRADIENT,
            _rule("vanish", gate),
            SOURCE + " gradient_issue threshold_low 1e-3, threshold_low_1 1e-4",
        ),
        Rule("slow_convergence", SLOW_CONVERGENCE, _rule("not_converge", gate), SOURCE + " loss_issue sc_threshold"),
        Rule("oscillating_loss", "oscillation", _rule("unstable", gate), SOURCE + " ol_judge"),
    )
    gradient_only = ("dying_relu", "exploding_gradient", "vanishing_gradient")
    return rules if gate else tuple(r for r in rules if r.name in gradient_only)


TOOL = Tool("AUTOTRAINER", _rules(gate=True), reports="first_check")
TOOL_UNGATED = Tool("AUTOTRAINER (no accuracy gate)", _rules(gate=False), reports="first_check")
