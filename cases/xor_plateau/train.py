"""xor_plateau's loop: the post's `while J > 0.001` iterations, its cost J, the outputs' spread
over the four inputs (0 on the plateau, where the net answers 0.5 to all of them) and the step
taken, and the trace the diagnosis tools read.

The config and the declarations (fixes, expectations) are in case.py; network and gradients in
model.py.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch

from failbench.cases.xor_plateau.model import M, Net, Y, cost, forward, gradients, init
from failbench.trace import Observed

if TYPE_CHECKING:  # the config is declared beside the fixes that change it
    from failbench.cases.xor_plateau.case import Config

SOLVED = 0.001  # the post's loop: `while J > 0.001`


def measure(net: Net, step_size: float) -> dict[str, float]:
    """J, how many of the four outputs are on the right side of 0.5, their spread (the std over
    the four inputs: ~0 when the net answers the same to all of them) and the step's size relative
    to the weights (|delta theta| / |theta|)."""
    a3 = forward(net)[2]
    return {
        "cost": cost(a3),
        "right": float(np.sum((a3 > 0.5) == (Y > 0.5))),
        "output_spread": float(np.std(a3)),
        "step_ratio": step_size,
    }


def observe(net: Net, g1: np.ndarray, g2: np.ndarray, d1: np.ndarray, d2: np.ndarray) -> list[Observed]:
    """The two layers at a traced step, as torch tensors (harness/trace.py)."""
    z2, a2, _ = forward(net)
    t = torch.from_numpy
    return [
        Observed("hidden", "linear", "sigmoid", pre=t(z2), weight=t(net.theta1), grad=t(g1 / M), update=t(d1)),
        Observed(
            "output", "linear", "sigmoid", pre=t(a2 @ net.theta2.T), weight=t(net.theta2), grad=t(g2 / M), update=t(d2)
        ),
    ]


def _relative(d1: np.ndarray, d2: np.ndarray, net: Net) -> float:
    """|delta theta| / |theta| over both layers."""
    return float(np.sqrt(((d1**2).sum() + (d2**2).sum()) / ((net.theta1**2).sum() + (net.theta2**2).sum())))


def train(cfg: Config, run) -> dict[str, float]:
    if cfg.gradient not in ("accumulated", "reset"):
        raise ValueError(f"unknown gradient {cfg.gradient!r}; choose from accumulated, reset")
    # the run's seed through torch's generator, which the harness seeds: numpy's own is not
    rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, ())))
    net = init(cfg.init_eps, rng)
    sum1, sum2 = np.zeros_like(net.theta1), np.zeros_like(net.theta2)  # `Theta1_grad = zeros(...)`, once
    every = run.log_every(cfg.steps)
    step_size = 0.0
    for i in range(cfg.steps):
        g1, g2, a3 = gradients(net)
        j = cost(a3)
        if not math.isfinite(j):  # the run ends as diverged here (a tensor only then: ~10 us an iteration)
            run.guard(i, cost=torch.tensor(j))
        if j <= SOLVED:  # the post's `while J > 0.001`: solved, the loop ends
            break
        if cfg.gradient == "accumulated":  # the post: `Theta1_grad += delta2 * a1'`, never reset
            sum1 += g1
            sum2 += g2
        else:  # this iteration's gradient alone
            sum1, sum2 = g1, g2
        d1, d2 = -cfg.alpha / M * sum1, -cfg.alpha / M * sum2  # `Theta1 -= alpha / m * Theta1_grad`
        net.theta1 += d1
        net.theta2 += d2
        if i % every == 0:  # after the update: the step just taken, and the net it left
            step_size = _relative(d1, d2, net)
            run.log(i, **measure(net, step_size))
            if run.trace.due(i):
                run.trace.record(i, observe(net, g1, g2, d1, d2), output=torch.from_numpy(forward(net)[2][:, None]))
    final = measure(net, step_size)
    run.log(cfg.steps, **final)
    return final
