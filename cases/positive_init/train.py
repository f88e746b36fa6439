"""positive_init's training loop: the post's hand-written backpropagation, one training digit per
update, its measurements (the post's total error, accuracy, and the share of the hidden layer's
units on the sigmoid's flat region) and the trace the diagnosis tools read.

The config and the declarations (fixes, expectations) are in case.py; data, weights and the
backward pass in model.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from failbench.cases.positive_init.model import (
    Params,
    flat_share,
    forward,
    gradients,
    init_params,
    load,
    total_error,
)
from failbench.trace import Observed

if TYPE_CHECKING:  # the config is declared beside the fixes that change it
    from failbench.cases.positive_init.case import Config


@torch.no_grad()
def measure(p: Params, data) -> dict[str, float]:
    """On all training digits: the post's total error (mean per digit), accuracy, the hidden
    layer's flat share and its output's spread across digits; on the test digits, accuracy."""
    train_x, train_y, test_x, test_y = data
    _, hidden, out = forward(p, train_x)
    return {
        "total_error": float(total_error(out, train_y).mean()),
        "train_accuracy": float((out.argmax(1) == train_y).float().mean()),
        "test_accuracy": float((forward(p, test_x)[2].argmax(1) == test_y).float().mean()),
        "flat_hidden": flat_share(hidden),
        # the std across digits of each output, averaged: 0 when every digit gets the same output
        "output_spread": float(out.std(0, correction=0).mean()),
    }


def observe(p: Params, x: torch.Tensor, grads: Params, before: Params) -> list[Observed]:
    """The two layers at a traced step, for the diagnosis tools (harness/trace.py)."""
    pre, hidden, _ = forward(p, x)
    layers = (
        ("hidden", pre, p.w1, grads.w1, before.w1),
        ("output", torch.addmm(p.b2, hidden, p.w2.T), p.w2, grads.w2, before.w2),
    )
    return [Observed(name, "linear", "sigmoid", pre=z, weight=w, grad=g, update=w - b) for name, z, w, g, b in layers]


class AdamStep:
    """Adam (Kingma and Ba 2015) on the hand-written gradients, torch's defaults but the rate."""

    def __init__(self, p: Params, lr: float, betas=(0.9, 0.999), eps: float = 1e-8):
        self.lr, self.betas, self.eps, self.t = lr, betas, eps, 0
        self.m = [torch.zeros_like(t) for t in p.tensors()]
        self.v = [torch.zeros_like(t) for t in p.tensors()]

    def __call__(self, p: Params, grads: Params, lr: float) -> None:
        self.t += 1
        b1, b2 = self.betas
        for w, g, m, v in zip(p.tensors(), grads.tensors(), self.m, self.v):
            m.mul_(b1).add_(g, alpha=1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            denom = (v / (1 - b2**self.t)).sqrt_().add_(self.eps)
            w.addcdiv_(m, denom, value=-self.lr / (1 - b1**self.t))


def sgd_step(p: Params, grads: Params, lr: float) -> None:
    for w, g in zip(p.tensors(), grads.tensors()):
        w.sub_(g, alpha=lr)


def train(cfg: Config, run) -> dict[str, float]:
    p = init_params(cfg.init, cfg.hidden, run.device)  # drawn first: the same weights whatever the data
    data = load(run.device)
    train_x, train_y = data[0], data[1]
    if cfg.optimizer not in ("sgd", "adam"):
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose from sgd, adam")
    step = AdamStep(p, cfg.lr) if cfg.optimizer == "adam" else sgd_step
    every = run.log_every(cfg.steps)
    batches = len(train_y) // cfg.batch_size  # 1,400 updates an epoch, one digit each
    for i in range(cfg.steps):
        if i % every == 0:
            run.log(i, **measure(p, data))
        if i % batches == 0:  # a new epoch: the digits reshuffled by the run's seeded generator
            order = torch.randperm(len(train_y), device=run.device)
        idx = order[(i % batches) * cfg.batch_size : (i % batches + 1) * cfg.batch_size]
        grads, out = gradients(p, train_x[idx], train_y[idx], cfg.loss)
        run.guard(i, out=out)
        traced = i % every == 0 and run.trace.due(i)
        before = Params(*(t.clone() for t in p.tensors())) if traced else None
        step(p, grads, cfg.lr)
        if traced:
            run.trace.record(i, observe(p, train_x, grads, before), output=forward(p, train_x)[2])
    final = measure(p, data)
    run.log(cfg.steps, **final)
    return final
