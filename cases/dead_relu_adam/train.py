"""dead_relu_adam's training loop: minibatches of cross-entropy under Adam (or SGD), the thread's
columns (loss, accuracy) and what the reply found when it looked inside: the share of a layer's ReLU
units that are zero on every training digit, and the share of parameters that are negative.

The config and the declarations (fixes, expectations) are in case.py; data and network in model.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from failbench.cases.dead_relu_adam.model import DigitCNN, load
from failbench.probes import Probe

if TYPE_CHECKING:  # the config is declared beside the fixes that change it
    from failbench.cases.dead_relu_adam.case import Config


MEASURED_EVERY = 10  # of the ~100 logged steps: the report's curves of the whole sets get ~10 points


@torch.no_grad()
def measure(model, data) -> dict[str, float]:
    """Loss (`train_loss`) and accuracy on the training digits, test accuracy, and the reply's two looks inside:
    `dead_units`, over the hidden ReLU layers, the largest share of units that are zero on every
    one of the 1,400 training digits (1.0: a whole layer passes nothing on, and the output is the
    last layer's bias, the same for every digit), and `negative_params`, the share of all weights
    and biases below 0 ("they are almost all negative")."""
    train_x, train_y, test_x, test_y = data
    with Probe(model) as probe:  # one pass over the whole training set: dead = zero on all of it
        out = model(train_x)
    metrics = {
        "train_loss": float(F.cross_entropy(out, train_y)),
        "train_accuracy": float((out.argmax(1) == train_y).float().mean()),
        "test_accuracy": float((model(test_x).argmax(1) == test_y).float().mean()),
        "negative_params": float(torch.cat([p.flatten() for p in model.parameters()]).lt(0).float().mean()),
    }
    if probe.dead:  # ReLU layers only: a leaky unit is never zero
        metrics["dead_units"] = max(probe.dead.values())
    return metrics


def _optimiser(cfg: Config, model):
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose from adam, sgd")


def _scheduler(cfg: Config, opt):
    if cfg.scheduler == "none":
        return None
    if cfg.scheduler == "plateau":  # torch's defaults: x0.1 after 10 epochs without a better loss
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
    raise ValueError(f"unknown scheduler {cfg.scheduler!r}; choose from none, plateau")


def train(cfg: Config, run) -> dict[str, float]:
    data = load(run.device)
    train_x, train_y = data[0], data[1]
    model = DigitCNN(cfg.activation, cfg.softmax_output).to(run.device)
    run.trace.watch(model)
    opt = _optimiser(cfg, model)
    scheduler = _scheduler(cfg, opt)
    every = run.log_every(cfg.steps)
    batches = len(train_y) // cfg.batch_size  # 14 updates an epoch at the baseline's 100
    epoch_loss = 0.0
    for step in range(cfg.steps):
        if step % batches == 0:  # a new epoch: the digits reshuffled by the run's seeded generator
            if scheduler is not None and step:
                scheduler.step(epoch_loss / batches)
            order, epoch_loss = torch.randperm(len(train_y), device=run.device), 0.0
        idx = order[(step % batches) * cfg.batch_size : (step % batches + 1) * cfg.batch_size]
        out = model(train_x[idx])
        loss = F.cross_entropy(out, train_y[idx])  # on the softmax, where the thread's bug is
        run.guard(step, loss=loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
        epoch_loss += float(loss.detach())
        if step % every == 0:  # what the thread's loop prints: the batch's loss (and its accuracy)
            batch = {
                "loss": float(loss.detach()),
                "batch_accuracy": float((out.argmax(1) == train_y[idx]).float().mean()),
            }
            # the whole sets, every MEASURED_EVERY-th logged step: they cost ~6 updates each
            run.log(step, **batch, **(measure(model, data) if step % (every * MEASURED_EVERY) == 0 else {}))
    final = measure(model, data)
    run.log(cfg.steps, **final)
    return final
