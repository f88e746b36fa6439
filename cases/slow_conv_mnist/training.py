"""The post's training loop: one image per update, evaluated the post's way and on a fixed test set.

The post's `evaluate` scores the network on a fresh random subset of the training data at every
check; this loop logs that number (`post_eval_accuracy`, `post_eval_error`) next to the accuracy
on a fixed set of as many held-out digits (`fixed_eval_accuracy`), so the spread the random subsets
add can be told from the network's own. The whole test set is scored once, at the end.
"""
from __future__ import annotations

import time

import torch

from cases.slow_conv_mnist.data import load
from cases.slow_conv_mnist.model import backward_and_update, build, forward, init, loss_and_delta, to
from cases.slow_conv_mnist.observe import BATCH, observe

CHECKS = 100  # logged points per run, whatever the budget
SAMPLING_DRAWS = 200  # subsets drawn at the end to measure the post's sampling spread alone
SAMPLING_POOL = 1000  # training digits scored once at the end; the draws come from their scores


@torch.no_grad()
def _scores(layers, x, y, chunk: int = 250) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-digit correctness and 1/2 * squared error against one-hot targets (the post's error)."""
    right, errors = [], []
    for i in range(0, len(y), chunk):
        out = forward(layers, x[i:i + chunk], train=False)
        target = torch.nn.functional.one_hot(y[i:i + chunk], out.shape[1]).to(out.dtype)
        right.append((out.argmax(1) == y[i:i + chunk]).float())
        errors.append(0.5 * ((out - target) ** 2).sum(1))
    return torch.cat(right), torch.cat(errors)


def _post_eval(layers, digits, size: int, picker: torch.Generator) -> dict[str, float]:
    pick = torch.randperm(len(digits.train_y), generator=picker)[:size].to(digits.train_y.device)
    right, errors = _scores(layers, digits.train_x[pick], digits.train_y[pick])
    return {"post_eval_accuracy": float(right.mean()), "post_eval_error": float(errors.sum())}


def first_layer_picture(layers) -> torch.Tensor:
    """The first layer's weights side by side (conv filters, or 5 hidden units' 32x32 weights),
    grey = 0, each tile scaled by its own largest magnitude."""
    w = layers[0].w if hasattr(layers[0], "w") else layers[1].w[:5].view(5, 1, 32, 32)
    tiles = w[:, 0]
    tiles = tiles / tiles.abs().amax((1, 2), keepdim=True).clamp_min(1e-12)
    pad = torch.nn.functional.pad(tiles, (0, 1, 0, 1), value=-1.0)  # a black seam between tiles
    return (0.5 + 0.5 * torch.cat(list(pad), dim=1))[:-1, :-1]


def train(cfg, run) -> dict[str, float]:
    digits = load(cfg.data_dir, cfg.train_size, cfg.test_size, run.device)
    layers = build(cfg.network, cfg.activation)
    init(layers, cfg.init)  # the runner seeded torch's global generator with the run's seed
    to(layers, run.device)
    n, batch = len(digits.train_y), cfg.batch_size
    per_epoch = n // batch
    steps = cfg.epochs * per_epoch
    every = max(1, steps // CHECKS)
    picker = torch.Generator().manual_seed(10_000 + run.seed)  # its own stream: evaluating never
    # changes which images the network trains on
    curves, running, seen = [], torch.zeros((), device=run.device), 0

    fixed_x, fixed_y = digits.test_x[:cfg.eval_size], digits.test_y[:cfg.eval_size]

    def check(step: int) -> None:
        if run.trace.due(step):  # first: the evaluation below overwrites the last step's inputs
            run.trace.record(step, *observe(layers, digits.train_x[:BATCH], cfg.lr))
        metrics = _post_eval(layers, digits, cfg.eval_size, picker)
        metrics["fixed_eval_accuracy"] = float(_scores(layers, fixed_x, fixed_y)[0].mean())
        curves.append((metrics["post_eval_accuracy"], metrics["fixed_eval_accuracy"],
                       metrics["post_eval_error"]))
        if seen:
            metrics["train_loss"] = float(running) / seen
        run.log(step, **metrics)

    check(0)
    start, step = time.perf_counter(), 0
    for _ in range(cfg.epochs):
        order = torch.randperm(n).to(run.device)
        for i in range(per_epoch):
            pick = order[i * batch:(i + 1) * batch]
            out = forward(layers, digits.train_x[pick])
            step += 1
            run.guard(step, output=out)  # the post's "nasty error" would be a non-finite output
            loss, delta = loss_and_delta(out, digits.train_y[pick], cfg.loss)
            backward_and_update(layers, delta, cfg.lr)
            running += loss
            seen += len(pick)
            if step % every == 0:
                check(step)
                running.zero_()
                seen = 0
    seconds = time.perf_counter() - start
    run.image("first_layer", first_layer_picture(layers).cpu())
    final = final_metrics(layers, digits, cfg, curves, picker, seconds / max(1, steps * batch))
    run.log(step, **final)  # so the report's curves end on the final numbers
    return final


def _std(values: torch.Tensor) -> float:
    return float(values.std()) if len(values) > 1 else 0.0


def final_metrics(layers, digits, cfg, curves, picker, seconds_per_image) -> dict[str, float]:
    test_right, test_errors = _scores(layers, digits.test_x, digits.test_y)
    late = torch.tensor(curves[len(curves) // 2:])  # the second half of training (>= 2 checks)
    pool = _scores(layers, digits.train_x[:SAMPLING_POOL], digits.train_y[:SAMPLING_POOL])[0].cpu()
    draws = torch.stack([pool[torch.randperm(len(pool), generator=picker)[:cfg.eval_size]].mean()
                         for _ in range(SAMPLING_DRAWS)])
    return {
        "test_accuracy": float(test_right.mean()),
        "post_eval_accuracy": curves[-1][0], "post_eval_error": curves[-1][2],
        "test_error_per_image": float(test_errors.mean()),
        # The post's curve late in training: how far its evaluation jumps between checks, next to
        # the same-sized fixed set (the network's own changes) ...
        "post_eval_spread": _std(late[:, 0]), "fixed_eval_spread": _std(late[:, 1]),
        "post_eval_min": float(late[:, 0].min()), "post_eval_max": float(late[:, 0].max()),
        # ... and the spread the random subsets alone cause, at the final weights.
        "sampling_spread": _std(draws),
        "ms_per_image": 1000 * seconds_per_image,
    }
