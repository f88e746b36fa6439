"""binary_ce_labels's training loop: Keras's `fit` as the post called it (Adam, batches of 32
reshuffled every epoch, the last third held out for validation), its printed columns (loss, acc,
val_loss, val_acc) and what sits behind them: the share of digits whose output is pinned at the
loss's clip, and the output's spread across digits.

The config and the declarations (fixes, expectations) are in case.py; data, network and losses in
model.py.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from failbench.cases.binary_ce_labels.model import (
    KERAS_EPSILON,
    DenseNet,
    keras_binary_crossentropy,
    keras_sparse_categorical_crossentropy,
    load,
    predicted_class,
)

if TYPE_CHECKING:  # the config is declared beside the fixes that change it
    from failbench.cases.binary_ce_labels.case import Config

HEADS = {"sigmoid": 1, "softmax": 10}  # the post's one sigmoid unit; its fix's ten-way softmax


def loss_of(head: str):
    """Per-sample loss of the model's output: the post's binary_crossentropy on the labels 0-9, or
    the fix's sparse_categorical_crossentropy."""
    return keras_binary_crossentropy if head == "sigmoid" else keras_sparse_categorical_crossentropy


@torch.no_grad()
def measure(model, data, loss_fn) -> dict[str, float]:
    """Keras's columns on the fitted and the validation digits, accuracy on the test digits, the
    share of fitted digits whose output sits at the clip (>= 1 - 1e-7: the loss's gradient is 0
    there) and the output's spread across them (std per output unit, averaged; 0 when every digit
    gets the same output)."""
    fit_x, fit_y, val_x, val_y, test_x, test_y = data
    out, val_out = model(fit_x), model(val_x)
    return {
        "loss": float(loss_fn(out, fit_y).mean()),
        "accuracy": float((predicted_class(out) == fit_y).float().mean()),
        "val_loss": float(loss_fn(val_out, val_y).mean()),
        "val_accuracy": float((predicted_class(val_out) == val_y).float().mean()),
        "test_accuracy": float((predicted_class(model(test_x)) == test_y).float().mean()),
        "clipped_share": float((out.max(1).values >= 1 - KERAS_EPSILON).float().mean()),
        "output_spread": float(out.std(0, correction=0).mean()),
    }


def train(cfg: Config, run) -> dict[str, float]:
    if cfg.head not in HEADS:
        raise ValueError(f"unknown head {cfg.head!r}; choose from {', '.join(HEADS)}")
    model = DenseNet(HEADS[cfg.head]).to(run.device)  # drawn first: the same weights whatever the data
    data = load(run.device, cfg.pixel_scale)
    fit_x, fit_y = data[0], data[1]
    loss_fn = loss_of(cfg.head)
    run.trace.watch(model)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, eps=1e-7)  # Keras's Adam: its epsilon 1e-7
    every = run.log_every(cfg.steps)
    batches = math.ceil(len(fit_y) / cfg.batch_size)  # Keras keeps the last, smaller batch: 30 of 938
    for step in range(cfg.steps):
        if step % every == 0:
            run.log(step, **measure(model, data, loss_fn))
        if step % batches == 0:  # a new epoch: Keras's shuffle=True, by the run's seeded generator
            order = torch.randperm(len(fit_y), device=run.device)
        idx = order[(step % batches) * cfg.batch_size : (step % batches + 1) * cfg.batch_size]
        loss = loss_fn(model(fit_x[idx]), fit_y[idx]).mean()
        run.guard(step, loss=loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    final = measure(model, data, loss_fn)
    run.log(cfg.steps, **final)
    return final
