"""nan_cross_entropy's training loop: minibatches of the post's summed loss under Adam, its
measurements (the post's train and test accuracy and loss, the logit gap that underflows the
softmax) and the step and batch where the loss turned NaN.

The config and the declarations (fixes, expectations) are in case.py; data, network and losses in
model.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from failbench.cases.nan_cross_entropy.model import LOSSES, DigitNet, load, logit_gap, zero_share

if TYPE_CHECKING:  # the config is declared beside the fixes that change it
    from failbench.cases.nan_cross_entropy.case import Config


def at_nan(logits: torch.Tensor) -> dict[str, float]:
    """Where a loss is not finite: how many of the probabilities were exactly 0 (the post's log(0))
    and how far apart the logits were."""
    return {"zero_probs_at_nan": zero_share(logits), "logit_gap_at_nan": logit_gap(logits)}


@torch.no_grad()
def measure(model, data, summed) -> dict[str, float]:
    """The post's columns (train loss and accuracy, test accuracy) and the softmax's underflow.
    `loss` is the run's own loss per training image: under the post's, NaN once any probability
    of the set is 0 (and then where it came from)."""
    train_x, train_y, test_x, test_y = data
    logits = model(train_x)
    metrics = {
        "loss": float(summed(logits, train_y)) / len(train_y),
        "train_accuracy": float((logits.argmax(1) == train_y).float().mean()),
        "test_accuracy": float((model(test_x).argmax(1) == test_y).float().mean()),
        "logit_gap": logit_gap(logits),
        "zero_probability_share": zero_share(logits),
    }
    return metrics if torch.isfinite(torch.tensor(metrics["loss"])) else {**metrics, **at_nan(logits)}


def _optimiser(cfg: Config, model):
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose from adam, sgd")


def train(cfg: Config, run) -> dict[str, float]:
    data = load(run.device)
    train_x, train_y = data[0], data[1]
    if cfg.loss not in LOSSES:
        raise ValueError(f"unknown loss {cfg.loss!r}; choose from {', '.join(LOSSES)}")
    if cfg.reduction not in ("sum", "mean"):
        raise ValueError(f"unknown reduction {cfg.reduction!r}; choose from sum, mean")
    per_batch = LOSSES[cfg.loss]

    def loss_fn(logits, y):  # the post's reduce_sum, or reduce_mean
        return per_batch(logits, y) / (len(y) if cfg.reduction == "mean" else 1)

    model = DigitNet(cfg.maps).to(run.device)
    run.trace.watch(model)
    opt = _optimiser(cfg, model)
    every = run.log_every(cfg.steps)
    batches = len(train_y) // cfg.batch_size  # 14 updates an epoch at the baseline's 100
    for step in range(cfg.steps):
        if step % every == 0:
            run.log(step, **measure(model, data, per_batch))
        if step % batches == 0:  # a new epoch: the digits reshuffled by the run's seeded generator
            order = torch.randperm(len(train_y), device=run.device)
        idx = order[(step % batches) * cfg.batch_size : (step % batches + 1) * cfg.batch_size]
        logits = model(train_x[idx])
        loss = loss_fn(logits, train_y[idx])
        if not torch.isfinite(loss):  # the batch's evidence, then the run ends as diverged here
            run.log(step, **at_nan(logits.detach()))
            run.guard(step, loss=loss)
        opt.zero_grad()
        loss.backward()
        if cfg.clip_norm > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_norm)
        opt.step()
    final = measure(model, data, per_batch)
    run.log(cfg.steps, **final)
    return final
