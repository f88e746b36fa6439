"""AUTOTRAINER (Zhang et al., ICSE 2021), shiningrain/AUTOTRAINER, AutoTrainer/utils/monitor.py.

`IssueMonitor.determine` runs at every check (an epoch end). Its gradient features count at every
check; its loss features (the accuracy gate) only after `judgment_point` = 30% of the epochs. The
first time any issue is found the issue list is frozen (`if self.issue_list==[]`), so the tool
gives one diagnosis per run, in this order: a NaN -> 'explode'; else, when the run has not
converged (`not_converge`: best accuracy < Theta) or converges slowly (`sc_accuracy`: no rise of
accuracy >= delta between checks), 'relu' > 'explode' > 'vanish' > 'not_converge'; else an
oscillating accuracy -> 'unstable'.

The gate reads train *and* validation accuracy (`history['acc']`, `history['val_acc']`): without a
validation accuracy the gated rules abstain. TOOL_UNGATED reports the gradient features at the
first check where they count, without the gate: the gate is where the paper's tool avoids false
alarms on runs that learn anyway, and leaving it out shows what the gradient rules see alone.
"""

from __future__ import annotations

import math

from harness.detectors import (
    DEAD_RELU,
    EXPLODING,
    QUIET,
    SLOW_CONVERGENCE,
    VANISHING_GRADIENT,
    Finding,
    Rule,
    Tool,
    View,
    abstain,
    fire,
)

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


def _max_rise(values) -> float:
    """monitor.py max_delta_acc: the largest increase between consecutive checks (0 if none)."""
    return max([0.0] + [b - a for a, b in zip(values, values[1:])])


def _oscillates(acc) -> bool:
    """monitor.py ol_judge: local maxima and minima paired in order; a swing >= zeta counts."""
    peaks = [acc[i] for i in range(1, len(acc) - 1) if acc[i] - acc[i - 1] >= 0 and acc[i] - acc[i + 1] >= 0]
    dips = [acc[i] for i in range(1, len(acc) - 1) if acc[i] - acc[i - 1] <= 0 and acc[i] - acc[i + 1] <= 0]
    count = sum(peaks[i] - dips[i] >= ZETA for i in range(min(len(peaks), len(dips))))
    return count >= ETA * len(acc)


def _gradient_issue(view: View, step: int) -> str | None:
    """monitor.py gradient_issue at one check, in determine()'s order: relu, explode, vanish.
    Its zero share counts kernel and bias gradients together; the trace has the kernels' (a bias
    is one value per unit, a few percent of a layer's parameters)."""
    layers = view.weighted()
    if not layers:
        return None
    norm, zero, numel = (view.stat(s, layers) for s in ("g_norm", "g_zero", "numel"))
    if step not in norm.index or norm.loc[step].isna().all():
        return None
    g, z, n = norm.loc[step].dropna(), zero.loc[step], numel.loc[step] if step in numel.index else None
    if n is not None and (z * n).notna().any() and float((z * n).sum() / n[z.notna()].sum()) >= GAMMA:
        return "relu"
    rate = g.iloc[0] / g.iloc[-1] if g.iloc[-1] > 0 else math.inf
    if rate > BETA_3:
        return "explode"
    if rate < BETA_1 and g.iloc[0] < BETA_2:
        return "vanish"
    return None


def diagnose(view: View, gate: bool = True) -> tuple[str | None, int | None, str]:
    """The one issue AUTOTRAINER reports for a run, the check it is found at, or why it abstains
    (once per view: each of its rules reads the same diagnosis)."""
    return view.memo(("autotrainer", gate), lambda: _diagnose(view, gate))


def _diagnose(view: View, gate: bool) -> tuple[str | None, int | None, str]:
    nan_at = view.nonfinite_at()
    train, val = view.scalar("train_accuracy"), view.scalar("val_accuracy")
    if gate and (train.empty or val.empty):
        return None, None, "no validation accuracy: the accuracy gate cannot be judged"
    counted: list[str] = []
    total = view.steps[-1] if view.steps else 0
    for step in view.steps:
        if nan_at is not None and step >= nan_at:
            return "explode", nan_at, "a NaN in the loss, weights or gradients"
        issue = _gradient_issue(view, step)
        if issue and issue not in counted:
            counted.append(issue)
        if not gate:
            if counted:
                return counted[0], step, "gradient feature, ungated"
            continue
        if step < JUDGMENT_POINT * total:
            continue
        acc, vacc = list(train.loc[:step].dropna()), list(val.loc[:step].dropna())
        if not acc or not vacc:
            continue
        not_converged = max(vacc) < THETA or max(acc) < THETA
        slow = _max_rise(vacc) < DELTA and _max_rise(acc) < DELTA
        if not_converged or slow:
            for issue in ("relu", "explode", "vanish"):
                if issue in counted:
                    return issue, step, "gated by the accuracy"
            if slow:
                return "not_converge", step, "accuracy rises by less than delta"
        elif _oscillates(acc):
            return "unstable", step, "accuracy oscillates"
    if nan_at is not None:
        return "explode", nan_at, "a NaN in the loss, weights or gradients"
    return None, None, ""


def _rule(issue: str, gate: bool):
    def check(view: View) -> Finding:
        found, step, why = diagnose(view, gate)
        if found is None and why:
            return abstain(why)
        if issue in ("not_converge", "unstable") and not gate:
            return abstain("needs the accuracy gate")
        if issue in ("not_converge", "unstable") and view.scalar("train_accuracy").empty:
            return abstain("no accuracy")
        return fire(step, why) if found == issue else QUIET

    return check


def _rules(gate: bool) -> tuple[Rule, ...]:
    return (
        Rule("dying_relu", DEAD_RELU, _rule("relu", gate), SOURCE + " gradient_issue threshold_die_1 0.7"),
        Rule("exploding_gradient", EXPLODING, _rule("explode", gate), SOURCE + " gradient_issue threshold_high 70"),
        Rule(
            "vanishing_gradient",
            VANISHING_GRADIENT,
            _rule("vanish", gate),
            SOURCE + " gradient_issue threshold_low 1e-3, threshold_low_1 1e-4",
        ),
        Rule("slow_convergence", SLOW_CONVERGENCE, _rule("not_converge", gate), SOURCE + " loss_issue sc_threshold"),
        Rule("oscillating_loss", "oscillation", _rule("unstable", gate), SOURCE + " ol_judge"),
    )


TOOL = Tool("AUTOTRAINER", _rules(gate=True), first_alarm_only=True)
TOOL_UNGATED = Tool("AUTOTRAINER (no accuracy gate)", _rules(gate=False), first_alarm_only=True)
