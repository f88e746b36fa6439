"""harness/trace.py: its statistics against values computed directly from tensors (numpy), its
hooks against the gradients and updates autograd and SGD really made, and a trace from every case."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from failbench.discovery import case_names, load_case
from failbench.runner import Diverged, RunContext, make_reproducible
from failbench.trace import Observed, Trace, activation_stats, grad_stats, output_stats, update_stats, weight_stats


def test_activation_statistics_against_numpy():
    torch.manual_seed(0)
    z = torch.randn(8, 3, 5, 5) * 4
    z[:, 2] = -1.0  # one channel never active: a dead unit
    a = z.relu()
    s = activation_stats(z, a, "relu")
    units = a.numpy().transpose(1, 0, 2, 3).reshape(3, -1).T  # (samples, channels)
    assert s["act_zero"] == pytest.approx((units == 0).mean())
    assert s["pre_std"] == pytest.approx(z.numpy().std(), rel=1e-5)
    rate = (units > 0).mean(0)
    assert s["unit_activity"] == pytest.approx(rate.mean())
    assert s["unit_active_lt1"] == pytest.approx(1 / 3)  # the dead channel only
    major = np.percentile(np.abs(units), 95, axis=0, method="higher")
    assert s["unit_dead_p95"] == pytest.approx((major < 1e-5).mean())


def test_saturation_statistics_against_numpy():
    # 4 samples x 3 units; unit 0 is never inside SageMaker's +-9.4999, unit 1 once, unit 2 always
    z = torch.tensor([[-12.0, -12.0, 0.0], [-16.0, -6.0, 0.5], [10.0, 10.0, -0.2], [11.0, 11.0, 3.5]])
    a = torch.tanh(z)
    s = activation_stats(z, a, "tanh")
    assert s["sat_bound"] == pytest.approx((np.abs(z.numpy()) >= 5).mean())  # DeepDiagnosis' +-5
    assert s["sat_flat"] == pytest.approx(((1 - a.numpy() ** 2) < 0.01).mean())
    assert s["unit_inbounds_lt1"] == pytest.approx(1 / 3)  # unit 0 only: 0 of 4 inside (unit 1: 1 of 4)
    ro = np.array([_tdc_ro_b(a.numpy()[:, unit]) for unit in range(3)])
    assert s["unit_sat_ro"] == pytest.approx((ro > 0.85).mean())
    # the binned ro_B is the plain mean of |2 a - 1| (bins split at 0.5); on [0, 1] a tanh unit's
    # negative outputs read as saturated: unit 2, inside its range, reads 0.87, past ro_max 0.85
    assert ro == pytest.approx(np.abs(2 * a.numpy() - 1).mean(0))
    assert (ro > 0.85).tolist() == [True, True, True]


def _tdc_ro_b(acts, min_out=0.0, max_out=1.0, bins_count=50):
    """TheDeepChecker metrics.py compute_ro_B, on its settings.yaml range [0, 1]: values binned,
    each bin's mean g_b weighted by its count, |2 (g_b - min) / (max - min) - 1|."""
    bins = np.arange(min_out, max_out, (max_out - min_out) / bins_count)
    which = np.digitize(acts, bins)
    groups = [acts[which == b] for b in np.unique(which)]
    weighted = sum(len(g) * abs(2 * (g.mean() - min_out) / (max_out - min_out) - 1) for g in groups)
    return weighted / len(acts)


def test_weight_gradient_update_and_output_statistics_against_numpy():
    torch.manual_seed(1)
    w, g, dw = torch.randn(4, 6), torch.randn(4, 6), torch.randn(4, 6) * 1e-3
    g[0] = 0.0
    ws, gs, us = weight_stats(w), grad_stats(g), update_stats(w, dw)
    wn, gn, dn = w.numpy().astype(float), g.numpy().astype(float), dw.numpy().astype(float)
    assert ws["w_absmean"] == pytest.approx(np.abs(wn).mean()) and ws["w_neg"] == pytest.approx((wn < 0).mean())
    assert ws["w_norm"] == pytest.approx(np.linalg.norm(wn))
    assert gs["g_zero"] == pytest.approx(0.25) and gs["g_norm"] == pytest.approx(np.linalg.norm(gn))
    q = np.percentile(gn, [5, 95], method="higher")
    assert gs["g_range90"] == pytest.approx(q[1] - q[0])
    assert us["upd_ratio"] == pytest.approx(np.linalg.norm(dn) / (np.linalg.norm(wn) + 1e-9))  # SageMaker's epsilon
    assert us["upd_absmean_ratio"] == pytest.approx(np.abs(dn).mean() / np.abs(wn).mean())
    y = torch.tensor([[1.0, 2.0], [1.0, 4.0], [1.0, 6.0]])
    out = output_stats(y)
    assert out["out_var_min"] == 0.0 and out["out_spread"] == pytest.approx(np.std([2, 4, 6]) / 2)


def test_traced_steps_are_log_spaced_logged_steps():
    trace = Trace(growth=1.5)
    traced = []
    for step in range(0, 301, 3):
        if trace.due(step):
            trace.record(step, [])
            traced.append(step)
    assert traced[:4] == [0, 3, 6, 9] and all(b >= 1.5 * a for a, b in zip(traced[1:], traced[2:]))
    assert 10 <= len(traced) <= 16


def test_hooks_record_what_autograd_and_sgd_did():
    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3), nn.Tanh(), nn.Linear(3, 1)
    )
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    run = RunContext(device=torch.device("cpu"), seed=0, trace=Trace(scalars={"loss": "loss"}))
    run.trace.watch(model)
    x, y = torch.randn(5, 1, 6, 6), torch.randn(5, 1)
    expected = {}
    for step in range(4):
        out = model(x)
        loss = ((out - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        with torch.no_grad():
            model(x)  # an evaluation forward between backward and log: not a training forward
        if step == 0:
            w = model[0].weight
            with torch.no_grad():
                expected = {
                    "g_norm": float(w.grad.norm()),
                    "upd_ratio": 0.1 * float(w.grad.norm()) / float(w.norm()),
                    "pre_mean": float(model[0](x).mean()),
                }
        run.log(step, loss=float(loss))
        opt.step()
    run.trace.close()
    frame = run.trace.frame()
    first = frame[frame["step"] == 0]
    layers = first.drop_duplicates("layer")[["layer", "kind", "activation"]].values.tolist()
    assert layers == [["0", "conv", "relu"], ["3", "linear", "tanh"], ["5", "linear", "none"], ["", "", ""]]
    conv = first[first["layer"] == "0"].set_index("stat")["value"]
    assert conv["g_norm"] == pytest.approx(expected["g_norm"], rel=1e-6)
    assert conv["upd_ratio"] == pytest.approx(expected["upd_ratio"], rel=1e-5)
    assert conv["pre_mean"] == pytest.approx(expected["pre_mean"], rel=1e-5)
    scalars = first[first["layer"] == ""].set_index("stat")["value"]
    assert "loss" in scalars and "out_spread" in scalars
    assert set(frame.loc[frame["layer"] != "", "step"]) == {0, 1, 2}  # log-spaced: 0, 1, 2, then 4
    assert set(frame.loc[frame["stat"] == "loss", "step"]) == {0, 1, 2, 3}  # the scalars: every logged step


def test_a_period_averages_the_log_update_ratio_over_ten_iterations_as_thedeepchecker():
    """hooks.py check_unstable_training: per iteration log10(mean |dw| / mean |w_before|), averaged over
    the period of 10 from the traced step; rates of mean |g| between consecutive iterations."""
    torch.manual_seed(0)
    layer = nn.Linear(4, 1, bias=False)
    opt = torch.optim.SGD(layer.parameters(), lr=0.05)
    trace = Trace(scalars={"loss": "loss"})
    trace.watch(layer)
    x = torch.randn(8, 4)
    logs, grads = [], []
    for step in range(14):
        loss = (layer(x) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        trace.on_log(step, {"loss": float(loss)})
        before = layer.weight.detach().clone()
        opt.step()
        if step <= 9:  # the period from traced step 0; steps 1, 2, 4, 8 are traced inside it
            ratio = float((layer.weight.detach() - before).abs().mean() / before.abs().mean())
            logs.append(math.log10(ratio))
            grads.append(float(layer.weight.grad.abs().mean()))
    trace.close()
    frame = trace.frame()
    period = frame[(frame["layer"] == "") == False].set_index(["step", "stat"])["value"]  # noqa: E712
    assert period[(0, "upd_log_period")] == pytest.approx(sum(logs) / len(logs), rel=1e-5)
    rates = [b / a for a, b in zip(grads[-5:], grads[-4:])]
    assert period[(0, "g_rate_min")] == pytest.approx(min(rates), rel=1e-5)
    assert period[(0, "g_absmean_last")] == pytest.approx(grads[-1], rel=1e-5)


def test_the_trace_carries_the_scalars_a_case_declares_under_its_own_names():
    """A case that logs its loss as `train_loss` declares it; an undeclared metric is not guessed."""
    trace = Trace(scalars={"loss": "train_loss", "val_accuracy": "held_out_accuracy"})
    trace.record(0, [Observed("l", "linear", weight=torch.ones(3))])
    trace.on_log(0, {"train_loss": 2.5, "held_out_accuracy": 0.25, "accuracy": 0.5})
    stats = trace.frame().query("layer == ''").set_index("stat")["value"]
    assert stats.drop("trace_seconds").to_dict() == {"loss": 2.5, "val_accuracy": 0.25}
    with pytest.raises(ValueError, match="unknown trace scalar"):
        Trace(scalars={"error_rate": "err"})


def test_explicit_record_takes_the_update_against_the_weight_before_it():
    trace = Trace()
    w_before, dw = torch.ones(3), torch.full((3,), 0.5)
    trace.record(0, [Observed("l", "linear", weight=w_before + dw, update=dw)])
    stats = trace.frame().set_index("stat")["value"]
    assert stats["upd_ratio"] == pytest.approx(0.5)


@pytest.mark.parametrize("name", case_names())
def test_every_case_records_a_trace(name):
    """The contract: a case's loop records per-layer statistics and the loss, whatever the budget."""
    case = load_case(name)
    make_reproducible(0, 1)
    config = case.config("baseline", overrides=case.smoke_budget)
    run = RunContext.for_case(case, torch.device("cpu"), seed=0)
    try:
        case.train(config, run)
    except Diverged:
        pass
    finally:
        run.trace.close()
    frame = run.trace.frame()
    assert not frame.empty, f"{name} records no trace (run.trace.watch(model) or run.trace.record(...))"
    layers = frame[frame["layer"] != ""]
    assert set(layers["kind"]) & {"conv", "linear"}, "no conv or linear layer in the trace"
    assert {"w_norm", "pre_mean"} <= set(layers["stat"]), "weights and activations are both traced"
    assert "loss" in set(frame.loc[frame["layer"] == "", "stat"]), "the loss is in the trace"
    assert case.failure_class, f"{name} declares no failure_class"
