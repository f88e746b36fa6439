"""What recording the per-layer trace costs: each case's quick baseline, trace off and on.

Run with `make bench` (pytest-benchmark; disabled in the normal test run); numbers, never asserted.
A round is one run with the trace off, then one with it on, each timed in CPU seconds of this
process (`time.process_time`: a run is one thread). Alternating pairs keep a slow spell of a shared
machine from landing on one side; the medians and the overhead go to the report's `extra_info` and
to stdout (`-s`).
"""

from __future__ import annotations

import statistics
import time

import pytest
import torch

from failbench.discovery import case_names, load_case
from failbench.runner import RunContext, make_reproducible
from failbench.trace import Trace
from tests import healthy_runs

CPU = torch.device("cpu")
PAIRS = {"blurry_inpainting": 3, "slow_conv_mnist": 4}  # the slowest runs; the others 16 pairs


def _timed_run(case, config, traced: bool) -> tuple[float, float]:
    """CPU seconds of one run, and the recorder's own share of them."""
    make_reproducible(0, 1)
    context = RunContext(device=CPU, seed=0, trace=Trace(enabled=traced, scalars=case.scalars))
    start = time.process_time()
    case.train(config, context)
    seconds = time.process_time() - start
    context.trace.close()  # as the runner does: its hooks leave with the run
    return seconds, context.trace.seconds


@pytest.mark.parametrize("name", case_names())
def test_trace_cost_per_quick_baseline(benchmark, name):
    case = load_case(name)
    config = case.config("baseline", {k: v[0] for k, v in case.axes.items()}, "quick")
    pairs: list[tuple[float, float, float]] = []

    def pair():
        off, _ = _timed_run(case, config, False)
        on, recorder = _timed_run(case, config, True)
        pairs.append((off, on, recorder))

    benchmark.group = "trace cost: one quick baseline run, trace off then on"
    benchmark.pedantic(pair, rounds=PAIRS.get(name, 16), warmup_rounds=1)
    timed = pairs[1:] or pairs  # [0] is the warm-up; with benchmarks disabled (the test run) it is all there is
    off, on, recorder = (statistics.median(p[i] for p in timed) for i in range(3))
    benchmark.extra_info.update(trace_off_s=off, trace_on_s=on, overhead=on / off - 1, in_recorder=recorder / on)
    print(f"\n{name}: trace off {off:.3f} s, on {on:.3f} s, {on / off - 1:+.1%}, in recorder {recorder / on:.1%}")


@pytest.mark.parametrize("steps", (healthy_runs.STEPS, 1000))
@pytest.mark.parametrize("name", sorted(healthy_runs.TRAININGS))
def test_recorder_cost_on_ordinary_trainings(benchmark, name, steps):
    """failbench.watch on a user's loop (tests/healthy_runs.py: a small CNN, an MLP, a small residual
    net with batch norm), off then on, in CPU seconds; the recorder's own share from its clock. The
    traced steps and TheDeepChecker's periods are log-spaced, so their cost is near fixed per run:
    its share falls with the run's length (120 updates, the tests' few CPU seconds, and 1,000)."""
    if steps != healthy_runs.STEPS and benchmark.disabled:
        pytest.skip("the long runs are for `make bench` only")
    pairs: list[tuple[float, float, float]] = []

    def pair():
        start = time.process_time()
        healthy_runs.train(name, 0, record=False, steps=steps)
        off = time.process_time() - start
        start = time.process_time()
        frame, _ = healthy_runs.train(name, 0, steps=steps)
        on = time.process_time() - start
        recorder = float(frame.loc[frame["stat"] == "trace_seconds", "value"].iloc[0])
        pairs.append((off, on, recorder))

    benchmark.group = "recorder cost: an ordinary training, failbench.watch off then on"
    benchmark.pedantic(pair, rounds=3, warmup_rounds=1)
    timed = pairs[1:] or pairs
    off, on, recorder = (statistics.median(p[i] for p in timed) for i in range(3))
    benchmark.extra_info.update(trace_off_s=off, trace_on_s=on, overhead=on / off - 1, in_recorder=recorder / on)
    share = f"{on / off - 1:+.1%}, in recorder {recorder / on:.1%}"
    print(f"\n{name}, {steps} steps: watch off {off:.3f} s, on {on:.3f} s, {share}")
