"""Each published rule against a hand-built trace where it must fire, and the same healthy trace
where it must stay quiet (not abstain: the healthy trace gives every signal the rules read)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from failbench.detectors import autotrainer, deepdiagnosis, sagemaker, thedeepchecker, tools
from failbench.detectors import own as diagnosis
from failbench.trace_reader import View

STEPS = list(range(0, 200, 10))  # 20 checks, from step 0: past TheDeepChecker's start (10)
LAYERS = {"conv1": ("conv", "relu"), "conv2": ("conv", "tanh"), "fc": ("linear", "sigmoid"), "out": ("linear", "none")}


def healthy() -> dict:
    """stat -> layer -> one value per step ('' is the run's scalars): a run that learns."""
    n = len(STEPS)
    ramp = lambda a, b: [a + (b - a) * i / (n - 1) for i in range(n)]  # noqa: E731
    per_layer = {
        "act_zero": 0.3,
        "act_nonpos": 0.3,
        "pre_std": 1.0,
        "out_std": 1.0,
        "unit_activity": 0.7,
        "unit_active_lt1": 0.0,
        "unit_dead_p95": 0.0,
        "sat_bound": 0.01,
        "sat_flat": 0.01,
        "unit_inbounds_lt1": 0.0,
        "unit_sat_ro": 0.1,
        "w_std": 0.1,
        "w_neg": 0.5,
        "w_small": 0.01,
        "numel": 100.0,
        "w_unchanged": 0.0,
        "g_absmean": 1e-2,
        "g_norm": 0.1,
        "g_zero": 0.0,
        "g_range90": 0.05,
        "upd_ratio": 1e-3,
        "upd_absmean_ratio": 1e-3,
        "reg_grad_norm": 0.01,
        "out_abs_mean": 0.5,
    }
    stats = {k: {layer: [v] * n for layer in LAYERS} for k, v in per_layer.items()}
    for k, (a, b) in {
        "pre_mean": (0.1, 0.3),
        "out_mean": (0.2, 0.4),
        "w_mean": (0.01, 0.03),
        "w_absmean": (0.08, 0.09),
        "w_norm": (1.0, 1.1),
        "g_mean": (1e-3, 2e-3),
    }.items():
        stats[k] = {layer: ramp(a, b) for layer in LAYERS}
    stats["loss"] = {"": [2.0 * 0.9**i for i in range(n)]}
    stats["train_accuracy"] = {"": ramp(0.5, 0.95)}
    stats["val_accuracy"] = {"": ramp(0.45, 0.9)}
    stats["out_var_min"] = {"": [0.1] * n}
    stats["out_spread"] = {"": [0.3] * n}
    stats["out_l1_max"] = {"": [1.0] * n}  # a softmax-like output: rows sum to 1
    return stats


def frame(stats: dict) -> pd.DataFrame:
    rows = []
    for stat, layers in stats.items():
        for layer, values in layers.items():
            kind, act = LAYERS.get(layer, ("", ""))
            rows += [(s, layer, kind, act, stat, float(v)) for s, v in zip(STEPS, values)]
    return pd.DataFrame(rows, columns=["step", "layer", "kind", "activation", "stat", "value"])


def setting(stat, value, layers=tuple(LAYERS)):
    def change(s):
        for layer in layers:
            s.setdefault(stat, {})[layer] = value if isinstance(value, list) else [value] * len(STEPS)

    return change


def scalar(stat, values):
    def change(s):
        s[stat] = {"": values}

    return change


def both(*changes):
    def change(s):
        for c in changes:
            c(s)

    return change


n = len(STEPS)
STUCK = both(scalar("train_accuracy", [0.3] * n), scalar("val_accuracy", [0.3] * n))
FIRST_LAST = lambda first, last: both(setting("g_norm", first, ("conv1",)), setting("g_norm", last, ("out",)))  # noqa: E731
CASES = [
    (autotrainer.TOOL, "dying_relu", both(STUCK, setting("g_zero", 0.9))),
    (autotrainer.TOOL, "exploding_gradient", both(STUCK, FIRST_LAST(100.0, 0.1))),
    (autotrainer.TOOL, "vanishing_gradient", both(STUCK, FIRST_LAST(1e-6, 0.1))),
    (autotrainer.TOOL, "slow_convergence", STUCK),
    (
        autotrainer.TOOL,
        "oscillating_loss",
        both(scalar("train_accuracy", [0.7, 0.8] * (n // 2)), scalar("val_accuracy", [0.7, 0.8] * (n // 2))),
    ),
    (autotrainer.TOOL, "abnormal_data", setting("out_abs_mean", 3000.0, ("conv1",))),
    (autotrainer.TOOL, "loss_issue", scalar("loss", [2.0] * (n - 1) + [-1.0])),
    (autotrainer.TOOL, "activation_issue", both(STUCK, scalar("out_l1_max", [5.0] * n))),
    (autotrainer.TOOL_UNGATED, "dying_relu", setting("g_zero", 0.9)),
    (autotrainer.TOOL_UNGATED, "exploding_gradient", FIRST_LAST(100.0, 0.1)),
    (autotrainer.TOOL_UNGATED, "vanishing_gradient", FIRST_LAST(1e-6, 0.1)),
    (deepdiagnosis.TOOL, "numerical_error", setting("out_mean", [0.2] * (n - 1) + [0.0], ("conv2",))),
    (deepdiagnosis.TOOL, "dead_node", setting("act_nonpos", 0.8, ("conv1",))),
    (deepdiagnosis.TOOL, "saturated_activation", setting("sat_bound", 0.6, ("conv2",))),
    (deepdiagnosis.TOOL, "vanishing_gradient", setting("g_absmean", 1e-8, ("fc",))),
    (deepdiagnosis.TOOL, "unchanged_tensor", setting("out_mean", 0.2, ("conv1",))),
    (deepdiagnosis.TOOL, "loss_not_decreasing", scalar("loss", [1.0] * n)),
    (thedeepchecker.TOOL, "dead_activations", setting("unit_dead_p95", 0.6, ("conv1",))),
    (thedeepchecker.TOOL, "saturated_activations", setting("unit_sat_ro", 0.6, ("conv2",))),
    (thedeepchecker.TOOL, "activation_distribution", setting("out_std", 0.1, ("conv1",))),
    (thedeepchecker.TOOL, "vanishing_gradient", setting("g_absmean", 1e-7, ("fc",))),
    (thedeepchecker.TOOL, "exploding_gradient", setting("g_absmean", 1e7, ("fc",))),
    (thedeepchecker.TOOL, "updates_too_large", setting("upd_absmean_ratio", 0.5, ("fc",))),
    (thedeepchecker.TOOL, "updates_too_small", setting("upd_absmean_ratio", 1e-5, ("fc",))),
    (thedeepchecker.TOOL, "negative_weights", setting("w_neg", 0.99, ("conv1",))),
    (thedeepchecker.TOOL, "dead_weights", setting("w_small", 0.99, ("fc",))),
    (thedeepchecker.TOOL, "diverging_weights", setting("w_absmean", [0.08 * 2**i for i in range(n)], ("fc",))),
    (thedeepchecker.TOOL, "loss_not_decreasing", scalar("loss", [1.0] * n)),
    (thedeepchecker.TOOL, "loss_diverging", scalar("loss", [1.0] * 5 + [2.0**i for i in range(n - 5)])),
    (thedeepchecker.TOOL, "loss_fluctuating", scalar("loss", [1.0, 1.2] * (n // 2))),
    (thedeepchecker.TOOL, "constant_outputs", scalar("out_var_min", [0.0] * n)),
    (thedeepchecker.TOOL, "overwhelming_regularization", setting("reg_grad_norm", 0.5, ("fc",))),
    (thedeepchecker.TOOL, "numerical_instability", setting("w_norm", [1.0] * (n - 1) + [math.inf], ("fc",))),
    (sagemaker.TOOL, "DeadRelu", setting("unit_active_lt1", 0.6, ("conv1",))),
    (sagemaker.TOOL, "SaturatedActivation", setting("unit_inbounds_lt1", 0.6, ("conv2",))),
    (sagemaker.TOOL, "VanishingGradient", setting("g_absmean", 1e-8, ("conv1",))),
    (sagemaker.TOOL, "ExplodingTensor", scalar("loss", [1.0] * (n - 1) + [math.nan])),
    (sagemaker.TOOL, "PoorWeightInitialization", setting("g_range90", 1e-4, ("conv2",))),
    (sagemaker.TOOL, "WeightUpdateRatio (large)", setting("upd_ratio", 20.0, ("fc",))),
    (sagemaker.TOOL, "WeightUpdateRatio (small)", setting("upd_ratio", 1e-9, ("fc",))),
    (sagemaker.TOOL, "LossNotDecreasing", scalar("loss", [1.0] * n)),
    (sagemaker.TOOL, "AllZero", setting("act_zero", 1.0, ("conv1",))),
    (sagemaker.TOOL, "UnchangedTensor", setting("w_unchanged", 1.0, ("fc",))),
    # failbench's own mechanisms (thresholds from the committed fit): past them to the end of the run
    (diagnosis.TOOL, "exploding", setting("w_norm", [1.0] * (n - 1) + [math.nan], ("fc",))),
    (diagnosis.TOOL, "dead_relu", setting("unit_active_lt1", [0.0] * (n - 3) + [1.0] * 3, ("conv1",))),
    (
        diagnosis.TOOL,
        "saturation",  # a halt: the paths close and the loss stops falling (above half its first)
        both(setting("sat_flat", [0.01] * (n - 3) + [0.99] * 3, ("conv2",)), scalar("loss", [1.0] * n)),
    ),
    (diagnosis.TOOL, "constant_output", scalar("out_spread", [0.3] * (n - 3) + [0.0] * 3)),
    (
        diagnosis.TOOL,
        "slow_convergence",  # a plateau: the loss unfinished, the output the same for every input
        both(scalar("loss", [1.0] * n), setting("upd_ratio", 1e-7), scalar("out_spread", [1e-3] * n)),
    ),
]


def _finding(tool, rule, stats):
    return next(r for r in tool.rules if r.name == rule).check(View(frame(stats)))


def test_every_rule_of_every_tool_is_tested():
    covered = {(t.name, r) for t, r, _ in CASES}
    every = {(t.name, r.name) for t in tools() for r in t.rules}
    assert every == covered


@pytest.mark.parametrize("tool,rule,change", CASES, ids=[f"{t.name}:{r}" for t, r, _ in CASES])
def test_rule_fires_on_its_symptom_and_not_on_a_healthy_run(tool, rule, change):
    quiet = _finding(tool, rule, healthy())
    assert quiet.fired is False, f"{rule} on a healthy trace: {quiet}"
    sick = healthy()
    change(sick)
    found = _finding(tool, rule, sick)
    assert found.fired is True and found.step in STEPS, f"{rule} missed its symptom: {found}"


def test_the_healthy_trace_raises_no_alarm_at_all():
    view = View(frame(healthy()))
    for tool in tools():
        fired = [n for n, f in tool.run(view).items() if f.fired]
        assert not fired, f"{tool.name} fired {fired} on a healthy run"


def test_rules_abstain_without_their_signal():
    stats = healthy()
    del stats["val_accuracy"], stats["reg_grad_norm"]
    stats["act_zero"] = {k: v for k, v in stats["act_zero"].items() if k != "conv1"}
    view = View(frame({k: v for k, v in stats.items()}).replace({"relu": "leaky"}))
    assert next(r for r in autotrainer.TOOL.rules if r.name == "dying_relu").check(view).fired is None
    assert sagemaker.dead_relu(view).fired is None  # no ReLU layer
    assert deepdiagnosis.dead_node(view).fired is None
    assert thedeepchecker.overwhelming_regularization(view).fired is None


def _autotrainer(*changes):
    stats = healthy()
    both(*changes)(stats)
    return autotrainer.diagnose(View(frame(stats)))


def test_autotrainer_reports_in_its_published_order():
    issues, step, _ = _autotrainer(STUCK, setting("g_zero", 0.9), FIRST_LAST(100.0, 0.1))
    assert issues == ("relu",)  # judge_issue: 'relu' before 'explode' under the gate
    assert step >= autotrainer.JUDGMENT_POINT * STEPS[-1] - 10  # the gate from 30% of the run, less one check gap


def test_autotrainer_not_converged_needs_both_accuracies_below_theta():
    """monitor.py loss_issue: max(test_acc) < Theta *and* max(train_acc) < Theta."""
    rising = [0.6 + 0.02 * i for i in range(n)]  # validation learns: above Theta, rising by > delta
    low_train_only = both(scalar("train_accuracy", [0.3] * n), scalar("val_accuracy", rising), setting("g_zero", 0.9))
    assert _autotrainer(low_train_only)[0] == ()  # validation learns: the gate stays shut
    assert _autotrainer(STUCK, setting("g_zero", 0.9))[0] == ("relu",)


def test_autotrainer_not_converge_needs_a_slow_accuracy_too():
    """judge_issue: 'not_converge' only with 'sc_accuracy' (no rise of delta between checks)."""
    rising = [0.1 + 0.02 * i for i in range(n)]
    low_but_rising = both(scalar("train_accuracy", rising), scalar("val_accuracy", rising))
    assert _autotrainer(low_but_rising)[0] == ()
    assert _autotrainer(STUCK)[0] == ("not_converge",)


def test_autotrainer_unstable_is_judged_apart_from_the_gate():
    """judge_issue: 'unstable' in its own `if`, beside a gated issue at the same check."""
    swinging = [0.3, 0.2] * (n // 2)
    accuracies = both(scalar("train_accuracy", swinging), scalar("val_accuracy", swinging))
    issues, _, _ = _autotrainer(accuracies, setting("g_zero", 0.9))
    assert set(issues) == {"relu", "unstable"}


def test_autotrainer_abnormal_data_comes_first_and_needs_no_gate():
    issues, step, _ = _autotrainer(setting("out_abs_mean", 3000.0, ("conv1",)), STUCK, setting("g_zero", 0.9))
    assert issues[0] == "abnormal_data" and step == STEPS[0]
    # the output layer's own size is not 'abnormal_output': only hidden layers count
    assert _autotrainer(setting("out_abs_mean", 3000.0, ("out",)))[0] == ()


def test_autotrainer_a_large_loss_is_a_nan_loss_and_explode_needs_a_nan_tensor():
    """check_large_loss: a loss >= 1e3 sets 'nan_loss'; judge_issue then reports 'explode' only with
    a NaN weight or gradient, and the gate is not judged on that check."""
    assert _autotrainer(scalar("loss", [2.0] * (n - 1) + [5e3]))[0] == ()
    issues, step, _ = _autotrainer(setting("w_norm", [1.0] * (n - 1) + [math.nan], ("fc",)))
    assert issues == ("explode",) and step == STEPS[-1]


def test_thedeepchecker_smoothness_matches_its_metrics_py():
    # deep_checker/metrics.py on [1, 2, 1, 2]: ratios 2, .5, 2 -> 2 sign changes -> (4 - 2) / 4
    assert thedeepchecker.smoothness([1.0, 2.0, 1.0, 2.0]) == 0.5
    assert thedeepchecker.smoothness([4.0, 3.0, 2.0, 1.0]) == 1.0


def test_detect_reads_the_store_only(tmp_path, monkeypatch, capsys):
    from failbench.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["detect", "relu_blowup"]) == 2
    assert "no MLflow store at" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [], "detect must never create a store"


def test_detect_scores_stored_traces(tracker, store_uri, capsys):
    """Two relu_blowup runs end to end: the failing baseline and its cure, each with a trace."""
    import torch

    from failbench.cli import main
    from failbench.sweep import run_sweep

    case = __import__("failbench.discovery", fromlist=["load_case"]).load_case("relu_blowup")
    run_sweep(
        case,
        "quick",
        tracker,
        torch.device("cpu"),
        variants=("baseline", "small_init+scaled_pixels"),
        seeds=1,
        progress=False,
    )
    assert main(["detect", "relu_blowup", "--tracking-uri", store_uri, "--by-variant"]) == 0
    out = capsys.readouterr().out
    for tool in tools():
        assert f"| relu_blowup | {tool.name} |" in out
    assert "| relu_blowup | baseline | SageMaker Debugger | 1 symptom | " in out and "DeadRelu 1/1" in out
    # the warning, replayed on the same traces: the dead baseline warned before the last quarter (its
    # cure at seed 0 is warned, slow_convergence at step 40 of 2,000 on its small-init plateau: one
    # of the 3 cured runs of 448 warned on the quick grid's seeds 0-9)
    assert main(["detect", "relu_blowup", "--tracking-uri", store_uri, "--warnings"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| relu_blowup |"))
    assert row.startswith("| relu_blowup | 1 | 1; 1 | ") and row.endswith("/1 |")


def test_a_tool_reports_in_its_own_way():
    from failbench.detectors.base import Finding, Rule, Tool

    findings = {"a": Finding(True, 20), "b": Finding(True, 10), "c": Finding(True, 10), "d": Finding(False)}
    rules = tuple(Rule(name, "x", lambda view: None, "test") for name in "abcd")  # reported() reads findings only
    assert Tool("t", rules, reports="all").reported(findings) == ["a", "b", "c"]
    assert Tool("t", rules, reports="first_check").reported(findings) == ["b", "c"]
    assert Tool("t", rules, reports="first_rule").reported(findings) == ["b"]


def test_wrong_class_alarms_cost_a_tool_that_fires_every_rule():
    from failbench.scoring import judge

    stats = healthy()
    both(setting("unit_dead_p95", 0.6, ("conv1",)), setting("w_neg", 0.99, ("conv1",)))(stats)
    judged = judge(thedeepchecker.TOOL, View(frame(stats)), "dead_relu")
    assert judged["right"] and judged["wrong"]  # dead activations (right) and negative weights (another class)


def test_a_diverged_run_is_judged_as_a_divergence_and_a_run_of_another_cause_only_as_detected():
    from failbench.scoring import judge, scores

    exploding = setting("w_norm", [1.0] * (n - 1) + [math.nan], ("fc",))
    assert judge(diagnosis.TOOL, View(frame(_changed(exploding))), "exploding/divergence")["right"]
    unknown = judge(diagnosis.TOOL, View(frame(_changed(exploding))), None)
    assert unknown["alarm"] and not unknown["right"] and not unknown["wrong"]
    row = {"case": "c", "tool": "t", "variant": "v", "axes": "{}", "symptom_final": math.nan, "first_alarm": 1.0}
    judged = pd.DataFrame(
        [
            {
                **row,
                "seed": 0,
                "verdict": "symptom",
                "expected": "saturation",
                "alarm": True,
                "right": True,
                "wrong": False,
            },
            {**row, "seed": 1, "verdict": "symptom", "expected": None, "alarm": True, "right": False, "wrong": False},
            {**row, "seed": 2, "verdict": "cured", "expected": None, "alarm": False, "right": False, "wrong": False},
        ]
    )
    table = scores(judged).iloc[0]
    assert (table["detection"].k, table["detection"].n) == (2, 2)
    assert (table["right_diagnosis"].k, table["right_diagnosis"].n) == (1, 1)
    assert (table["false_alarm"].k, table["false_alarm"].n) == (0, 1)


def test_a_clustered_share_counts_a_grid_point_once_when_its_seeds_agree():
    from failbench.stats import clustered_share, share

    independent = clustered_share([True] * 7 + [False] * 3, range(10))
    assert (independent.low, independent.high) == pytest.approx((share(7, 10).low, share(7, 10).high))
    # 10 grid points x 10 seeds, each point all-or-nothing: as wide as 5 of 10, not 50 of 100
    hits = [i < 50 for i in range(100)]
    points = [i // 10 for i in range(100)]
    clustered, pooled = clustered_share(hits, points), share(50, 100)
    assert (clustered.k, clustered.n) == (50, 100)
    assert clustered.high - clustered.low == pytest.approx(share(5, 10).high - share(5, 10).low, rel=1e-6)
    assert clustered.high - clustered.low > pooled.high - pooled.low


def test_thedeepchecker_judges_a_period_where_the_trace_has_one():
    """hooks.py check_unstable_training: the period's mean log ratio, not one iteration's; a mean of
    exactly 0 is 'w_untrained'. Gradient and weight trends: rates of consecutive iterations."""
    one_slow_step = setting("upd_absmean_ratio", 1e-5, ("fc",))  # the traced iteration alone: < 1e-4
    period_fine = setting("upd_log_period", -2.5, ("fc",))  # the period's mean: inside [-4, -1]
    rule = "updates_too_small"
    assert _finding(thedeepchecker.TOOL, rule, _changed(one_slow_step)).fired
    assert _finding(thedeepchecker.TOOL, rule, _changed(one_slow_step, period_fine)).fired is False
    assert _finding(thedeepchecker.TOOL, rule, _changed(setting("upd_log_period", 0.0, ("fc",)))).fired
    assert _finding(thedeepchecker.TOOL, "updates_too_large", _changed(setting("upd_log_period", -0.5, ("fc",)))).fired
    periods = both(setting("g_absmean_last", 1e-2), setting("g_rate_min", 0.9), setting("g_rate_max", 1.1))
    doubling = both(periods, setting("g_rate_min", 2.5, ("fc",)))
    halving = both(periods, setting("g_rate_max", 0.4, ("fc",)))
    # the traced points say nothing (flat g_absmean); the periods decide
    assert _finding(thedeepchecker.TOOL, "exploding_gradient", _changed(periods)).fired is False
    assert _finding(thedeepchecker.TOOL, "exploding_gradient", _changed(doubling)).fired
    assert _finding(thedeepchecker.TOOL, "vanishing_gradient", _changed(halving)).fired
    weights = both(setting("w_absmean_last", 0.1), setting("w_rate_min", 1.0))
    assert _finding(thedeepchecker.TOOL, "diverging_weights", _changed(weights)).fired is False
    assert _finding(thedeepchecker.TOOL, "diverging_weights", _changed(weights, setting("w_rate_min", 2.0))).fired


def _changed(*changes) -> dict:
    stats = healthy()
    for change in changes:
        change(stats)
    return stats


def test_failbench_reads_the_hidden_layers_and_a_failure_that_lasts():
    """Its rules fire only on a statistic that stays past the threshold to the end, on hidden
    layers (a saturated sigmoid output is a confident prediction), saturation only while the net
    does not learn through it (the loss above half its first, or one output for every input), and
    slow convergence only on a plateau: the loss within 10% of its first, or above half of it with
    the output the same for every input."""
    transient = setting("unit_active_lt1", [1.0] * 3 + [0.0] * (n - 3), ("conv1",))
    assert _finding(diagnosis.TOOL, "dead_relu", _changed(transient)).fired is False
    halted = scalar("loss", [1.0] * n)
    saturated_output = both(setting("sat_flat", 0.99, ("fc",)), halted)  # "fc" is hidden: "out" is last
    assert _finding(diagnosis.TOOL, "saturation", _changed(saturated_output)).fired
    # the same saturation under the healthy loss, which falls to 0.27 of its first: learned through
    assert _finding(diagnosis.TOOL, "saturation", _changed(setting("sat_flat", 0.99, ("fc",)))).fired is False
    only_the_output = {**LAYERS, "out": ("linear", "sigmoid")}
    stats = _changed(setting("sat_flat", 0.99, ("out",)), halted)
    rows = frame(stats)
    rows.loc[rows["layer"] == "out", "activation"] = only_the_output["out"][1]
    assert next(r for r in diagnosis.TOOL.rules if r.name == "saturation").check(View(rows)).fired is False
    # saturation closes paths across layers: a flat share f under the threshold t in one hidden layer
    # closes f of the paths; in two, 1 - (1 - f)^2, past t once f >= 1 - sqrt(1 - t)
    t = diagnosis.load_fit()["thresholds"]["closed_paths"]["threshold"]
    f = (t + 1 - math.sqrt(1 - t)) / 2
    one_layer = both(setting("sat_flat", f, ("conv2",)), halted)
    assert _finding(diagnosis.TOOL, "saturation", _changed(one_layer)).fired is False
    two_layers = both(one_layer, setting("sat_flat", f, ("fc",)))
    assert _finding(diagnosis.TOOL, "saturation", _changed(two_layers)).fired
    small_steps_learning = setting("upd_ratio", 1e-7)  # the healthy loss falls to 0.27 of its first
    assert _finding(diagnosis.TOOL, "slow_convergence", _changed(small_steps_learning)).fired is False
    # tiny steps, a loss at 0.8 of its first and an output that follows the input (spread 0.3,
    # |output| 0.5): a net at its minimum (a residual net near the identity), not one that has not started
    at_its_minimum = both(scalar("loss", [1.0] + [0.8] * (n - 1)), setting("upd_ratio", 1e-7))
    assert _finding(diagnosis.TOOL, "slow_convergence", _changed(at_its_minimum)).fired is False
    all_zero = both(at_its_minimum, scalar("out_spread", [0.0] * n), setting("out_abs_mean", 0.0, ("out",)))
    assert _finding(diagnosis.TOOL, "slow_convergence", _changed(all_zero)).fired
    # a rate too small: the loss within 10% of its first, tiny steps, the outputs still differing
    too_small_a_rate = both(scalar("loss", [1.0] * n), setting("upd_ratio", 1e-7))
    assert _finding(diagnosis.TOOL, "slow_convergence", _changed(too_small_a_rate)).fired
    # saturated hidden layers under a falling loss, the output the same for every input: the output
    # layer fitted the prior alone (positive_init), a halt
    prior_alone = both(
        setting("sat_flat", 0.99, ("fc",)), scalar("out_spread", [0.0] * n), setting("out_abs_mean", 0.5, ("out",))
    )
    assert _finding(diagnosis.TOOL, "saturation", _changed(prior_alone)).fired


def test_failbench_judges_a_divergence_by_what_the_run_ends_in():
    """A non-finite value the run recovers from (an inf gradient a mixed-precision scaler skipped) is
    no divergence; one on the last traced step, or a loss that stopped being finite, is."""
    inf = float("inf")
    skipped = setting("g_norm", [0.1] * 5 + [inf] + [0.1] * (n - 6), ("fc",))
    assert _finding(diagnosis.TOOL, "exploding", _changed(skipped)).fired is False
    assert View(frame(_changed(skipped))).nonfinite_at() == STEPS[5]  # the published tools still see it
    ends = setting("g_norm", [0.1] * (n - 3) + [inf] * 3, ("fc",))
    found = _finding(diagnosis.TOOL, "exploding", _changed(ends))
    assert found.fired and found.step == STEPS[n - 3]
    recorded = scalar("nonfinite", [1.0] * n)  # RunContext / Recorder mark the loss's divergence
    assert _finding(diagnosis.TOOL, "exploding", _changed(recorded)).fired


def test_failbench_fits_the_threshold_with_at_most_one_percent_false_alarms():
    import pandas as pd

    sick = [0.9, 0.8, 0.7, 0.5]  # one sick run no threshold can catch without alarming on cures
    cured = [0.0] * 95 + [0.6, 0.55, 0.01, 0.03, 0.04]  # 2 of 100 above the lowest sick run: 2% > 1%
    runs = pd.DataFrame(
        {
            "failure_class": ["saturation"] * len(sick) + ["other"] * len(cured),
            "verdict": ["symptom"] * len(sick) + ["cured"] * len(cured),
            **{m.statistic: [float("nan")] * (len(sick) + len(cured)) for m in diagnosis.MECHANISMS},
        }
    )
    runs["closed_paths"] = sick + cured
    fitted = diagnosis.fit(runs)["closed_paths"]
    # 3 of 4 sick runs, 0 of 100 cured; at equal detection the farthest from the cured: halfway
    # between 0.6 and 0.7 in log-odds (a share)
    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    assert fitted["threshold"] == pytest.approx(1 / (1 + math.exp(-(logit(0.6) + logit(0.7)) / 2)))
    # cured runs all at 0 put "halfway" at 0.002 in log-odds: the threshold stops at what the
    # mechanism means, half the paths closed
    runs["closed_paths"] = [0.9, 0.8, 0.7, 0.5] + [0.0] * len(cured)
    assert diagnosis.fit(runs)["closed_paths"]["threshold"] == diagnosis.BOUNDS["closed_paths"] == 0.5


def test_failbench_keeps_its_threshold_off_its_own_cases_symptom_of_another_cause():
    """A run of the mechanism's case with the symptom but not the mechanism (`Case.diagnosis_class`
    None: identity_filter's Dirac overshoot, its units open) is a run the rule must not name."""
    import pandas as pd

    halts, overshoots, cured = [0.99, 0.9, 0.7], [0.45, 0.46], [0.0] * 50 + [0.01]
    runs = pd.DataFrame(
        {
            "failure_class": ["saturation"] * (len(halts) + len(overshoots)) + ["other"] * len(cured),
            "verdict": ["symptom"] * (len(halts) + len(overshoots)) + ["cured"] * len(cured),
            "expected": ["saturation"] * len(halts) + [None] * (len(overshoots) + len(cured)),
            **{m.statistic: [float("nan")] * (len(halts) + len(overshoots) + len(cured)) for m in diagnosis.MECHANISMS},
        }
    )
    runs["closed_paths"] = halts + overshoots + cured
    fitted = diagnosis.fit(runs)["closed_paths"]
    assert 0.46 < fitted["threshold"] < 0.7  # between the overshoots and the lowest halt
    assert fitted["cured_runs"] == len(cured)  # the medians shown to a user are the cured runs' own
    said = diagnosis.verdicts_from_features(runs.assign(nonfinite=0.0), diagnosis.fit(runs))
    assert (said[len(halts) : len(halts) + len(overshoots)] == "none").all()


def test_thedeepchecker_reads_no_activation_its_source_does_not_list():
    """Its `is_activation_function` knows ELU, LeakyReLU, ReLU6, SELU, Tanh, Sigmoid and ReLU: a hard
    tanh layer gets none of its activation checks, however saturated."""
    rows = frame(_changed(setting("unit_sat_ro", 0.6, ("conv2",))))
    assert _finding(
        thedeepchecker.TOOL, "saturated_activations", _changed(setting("unit_sat_ro", 0.6, ("conv2",)))
    ).fired
    rows.loc[rows["layer"] == "conv2", "activation"] = "hardtanh"
    check = next(r for r in thedeepchecker.TOOL.rules if r.name == "saturated_activations").check
    assert not check(View(rows)).fired


def test_the_way_to_a_threshold_is_one_scale_for_ratios_and_shares():
    """0 at the suite's cured median, 1 at the threshold, in the statistic's own fitted scale."""
    ratio = next(m for m in diagnosis.MECHANISMS if m.statistic == "update_ratio")  # low is the failure
    assert diagnosis._way(1e-2, 1e-2, 1e-4, ratio) == pytest.approx(0.0)
    assert diagnosis._way(1e-3, 1e-2, 1e-4, ratio) == pytest.approx(0.5)  # one decade of two
    assert diagnosis._way(1e-4, 1e-2, 1e-4, ratio) == pytest.approx(1.0)
    share = next(m for m in diagnosis.MECHANISMS if m.statistic == "dead_units")  # high is the failure
    assert diagnosis._way(0.5, 0.1, 0.9, share) == pytest.approx(0.5)  # halfway in log-odds
    rows = [
        {"mechanism": "a", "margin": -0.5, "past": False, "way_to_threshold": 0.2},
        {"mechanism": "b", "margin": -1.5, "past": False, "way_to_threshold": 0.7},
    ]
    assert diagnosis.nearest(rows)["mechanism"] == "b"  # the smaller margin, in other units, is farther
