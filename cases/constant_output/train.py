"""constant_output's training loop: the post's full-batch steps with its hand-written backward
pass and weight decay, its measurements and its trace.

The config and the declarations (fixes, expectations) are in case.py; the model, the post's
backward pass and update in model.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from failbench.cases.constant_output.data import SIDE, load
from failbench.cases.constant_output.model import (
    WEIGHTS,
    AdamStep,
    autograd_backward,
    forward,
    init_params,
    patches,
    post_backward,
    step,
    weight_norms,
)
from failbench.cases.constant_output.picture import pred_vs_target
from failbench.trace import Observed

if TYPE_CHECKING:  # the config is declared beside the fixes that change it
    from failbench.cases.constant_output.case import Config

BACKWARDS = {"post": post_backward, "autograd": autograd_backward}


def r2(pred: torch.Tensor, y: torch.Tensor) -> float:
    """Coefficient of determination per output, averaged over the 4 (sklearn's uniform average)."""
    return float((1 - ((pred - y) ** 2).sum(0) / ((y - y.mean(0)) ** 2).sum(0)).mean())


def spread_ratio(pred: torch.Tensor, y: torch.Tensor) -> float:
    """Spread of the predictions across samples over that of the targets: sqrt(sum var / sum var)."""
    return float((pred.var(0).sum() / y.var(0).sum()).sqrt())


@torch.no_grad()
def measure(p, data, with_r2: bool = False, final: bool = False) -> dict[str, float]:
    """Spread, loss and the weight norms per layer; R^2 on train and held-out when asked (every 10th
    logged point: each value logged costs ~0.3 ms in MLflow, a quarter of a quick run in all)."""
    cols, y, cols_ho, y_ho = data
    x2, _, pred = forward(p, cols)
    metrics = {
        "loss": float(0.5 * ((pred - y) ** 2).sum(1).mean()),  # the post's E(1,t)
        "spread_ratio": spread_ratio(pred, y),
        **weight_norms(p),
    }
    if with_r2 or final:
        pred_ho = forward(p, cols_ho)[2]
        metrics.update(r2_train=r2(pred, y), r2_heldout=r2(pred_ho, y_ho))
    if final:
        metrics.update(
            spread_ratio_heldout=spread_ratio(pred_ho, y_ho),
            # the post: "after the first layer (which is the Conv) the output has already
            # become the same": the spread of the conv output across samples, per pixel
            conv_spread=float(x2.std(0).mean()),
        )
    return metrics


@torch.no_grad()
def observe(p, cols, grads, before: dict, cfg: Config) -> list[Observed]:
    """The three layers at a traced step: the gradient of the post's mean loss (its sums / n), the
    decay's own gradient (shrinkRate * w) and the change the step made to each weight."""
    x2, _, x5 = forward(p, cols)
    pre = {"w": x2.view(-1, 1, SIDE, SIDE), "theta1": torch.addmm(p.beta1, x2, p.theta1.T), "theta2": x5}
    names = {
        "w": ("conv", "conv", "none"),
        "theta1": ("hidden", "linear", "sigmoid"),
        "theta2": ("out", "linear", "none"),
    }
    return [
        Observed(
            *names[k],
            pre=pre[k],
            weight=getattr(p, k),
            grad=getattr(grads, k) / cfg.n_train,
            update=getattr(p, k) - before[k],
            reg_grad=cfg.shrink_rate * before[k],
        )
        for k in names
    ]


def train(cfg: Config, run) -> dict[str, float]:
    p = init_params(cfg.init, run.device)  # drawn first: the same weights whatever the data budget
    x, y, x_ho, y_ho = load(cfg.n_train, cfg.n_heldout, cfg.targets, run.device)
    data = (patches(x), y, patches(x_ho), y_ho)
    if cfg.backward == "autograd":  # leaves for good: autograd_backward then copies nothing per step
        for t in p.tensors():
            t.requires_grad_()
    backward = BACKWARDS[cfg.backward]
    if cfg.optimizer not in ("sgd", "adam"):
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose from ['adam', 'sgd']")
    update = AdamStep(p, cfg.lr) if cfg.optimizer == "adam" else step
    every = run.log_every(cfg.steps)
    start = measure(p, data, with_r2=True)
    run.log(0, **start)
    for i in range(1, cfg.steps + 1):
        grads, x5 = backward(p, data[0], y)
        run.guard(i, x5=x5)  # the outputs of the weights of step i-1: where an overflow shows first
        traced = i % every == 0 and run.trace.due(i)
        before = {k: getattr(p, k).detach().clone() for k in WEIGHTS} if traced else None
        update(p, grads, cfg.n_train, cfg.lr, cfg.shrink_rate, cfg.bias_step_scale)
        if i % every == 0:
            run.log(i, **measure(p, data, with_r2=i % (10 * every) == 0))
            if traced:
                run.trace.record(i, observe(p, data[0], grads, before, cfg), output=forward(p, data[0])[2])
    final = measure(p, data, final=True)
    final["loss_change"] = final["loss"] - start["loss"]  # the post: "the training error is decreasing"
    if run.seed == 0:  # the report shows seed 0; a figure costs ~0.3 s, as much as a quick run
        with torch.no_grad():
            pred, pred_ho = forward(p, data[0])[2], forward(p, data[2])[2]
        title = (
            f"spread ratio {final['spread_ratio']:.2g}, R2 train {final['r2_train']:.2f}, "
            f"held-out {final['r2_heldout']:.2f}"
        )
        run.image("pred_vs_target", pred_vs_target(pred, y, pred_ho, y_ho, title))
    return final
