"""The post's training loop: a summed gradient per batch, evaluated the post's way and on fixed digits.

The post's `evaluate` scores the network on a fresh random subset of the training data at every
check; this loop logs that number (`post_eval_accuracy`, `post_eval_error`) next to the accuracy
on a fixed set of held-out digits (`fixed_eval_accuracy`), so the spread the random subsets add can
be told from the network's own, and so the moment a network leaves chance is read off digits that
never change. The whole test set is scored once, at the end.
"""

from __future__ import annotations

import dataclasses
import math
import time

import torch

from failbench.cases.slow_conv_mnist.data import load
from failbench.cases.slow_conv_mnist.model import (
    READINGS,
    backward_and_step,
    build,
    forward,
    init,
    loss_and_delta,
    optimizer,
    to,
)
from failbench.cases.slow_conv_mnist.observe import BATCH, observe

# The post's learning rates: "0.001 (1e-3)" for its MLP, "0.0005 (5 * 1e-4)" for both conv nets.
POST_LR = {"mlp": 1e-3, "conv": 5e-4, "lenet5": 5e-4}
CHANCE = 0.1  # ten balanced classes; on the plateau every digit gets the same answer: exactly chance
LEFT_CHANCE = 2 * CHANCE  # "left chance": the fixed digits score above twice chance
LINEAR_CHECKS = 40  # evenly spaced checks, for the post's curve and its spread ...
LOG_CHECKS = 25  # ... and log-spaced ones from the first batch, to time an escape within ~30%
POST_EPOCH = 60_000  # the post's x axis: "values on X axis after 60000 are from second epoch"
SAMPLING_DRAWS = 200  # subsets drawn at the end to measure the post's sampling spread alone
# "Blew up": an evaluation error at least twice the untrained network's. Measured on explore_blowup
# (seeds 0-9): on batches of 16 the peak stays below the start (0.47-0.56 against 0.51-0.69 per digit
# under the std readings); every 128-image sum peaks 10x to 1e30x above it. Any factor from 1 to 10
# splits them; 2 leaves the 100-digit samples' own spread (< 30% between checks) well inside.
BLOW_UP = 2.0
SAMPLING_POOL = 1000  # training digits scored once at the end; the draws come from their scores


def check_points(steps: int, batch: int) -> list[int]:
    """The updates after which the loop checks: evenly spaced, plus log-spaced from the first."""
    linear = {round(steps * i / LINEAR_CHECKS) for i in range(1, LINEAR_CHECKS + 1)}
    logs = {round(math.exp(math.log(steps) * i / LOG_CHECKS)) for i in range(LOG_CHECKS + 1)}
    return sorted(s for s in linear | logs if 1 <= s <= steps)


def balanced(x: torch.Tensor, y: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first size/10 digits of each class: a network that gives every digit the same answer
    scores exactly chance (10%) on them, so rising above twice chance means it tells digits apart."""
    pick = torch.cat([torch.nonzero(y == c)[: size // 10, 0] for c in range(10)])
    return x[pick], y[pick]


@torch.no_grad()
def _scores(layers, x, y, chunk: int = 500) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-digit correctness and 1/2 * squared error against one-hot targets (the post's error)."""
    right, errors = [], []
    for i in range(0, len(y), chunk):
        out = forward(layers, x[i : i + chunk], train=False)
        target = torch.nn.functional.one_hot(y[i : i + chunk], out.shape[1]).to(out.dtype)
        right.append((out.argmax(1) == y[i : i + chunk]).float())
        errors.append(0.5 * ((out - target) ** 2).sum(1))
    return torch.cat(right), torch.cat(errors)


def first_layer_picture(layers) -> torch.Tensor:
    """The first layer's weights side by side (conv filters, or 5 hidden units' 32x32 weights),
    grey = 0, each tile scaled by its own largest magnitude."""
    w = layers[0].w if hasattr(layers[0], "w") else layers[1].w[:5].view(5, 1, 32, 32)
    tiles = w[:, 0]
    tiles = tiles / tiles.abs().amax((1, 2), keepdim=True).clamp_min(1e-12)
    pad = torch.nn.functional.pad(tiles, (0, 1, 0, 1), value=-1.0)  # a black seam between tiles
    return (0.5 + 0.5 * torch.cat(list(pad), dim=1))[:-1, :-1]


def post_mlp(cfg):
    """The yardstick of the post's contrast: its MLP trained the post's way, at its rate of 1e-3,
    on the same images in the same order. It keeps the run's reading of what the post leaves open
    (the init formula, the batch size); it drops a fix's change, so a fix is judged against the MLP
    the post had, never against an MLP the fix made faster or slower."""
    init = cfg.init if cfg.init in READINGS else "std_volume"
    return dataclasses.replace(
        cfg, network="mlp", lr=0.0, loss="sse", activation="post", optimizer="sgd", batch_grad="sum", init=init
    )


class Learner:
    """One network, its optimizer, and the check at which it first left chance (in images)."""

    def __init__(self, cfg, network: str, device: torch.device, generator: torch.Generator | None = None):
        self.layers = build(network, cfg.activation)
        init(self.layers, cfg.init, generator)  # None: torch's global generator, seeded by the runner
        to(self.layers, device)
        self.opt = optimizer(cfg.optimizer, cfg.lr or POST_LR[network])
        self.cfg, self.left_at = cfg, None

    def step(self, x, y, run, images: int) -> torch.Tensor:
        out = forward(self.layers, x)
        run.guard(images, output=out)  # the post's "nasty error" would be a non-finite output
        loss, delta = loss_and_delta(out, y, self.cfg.loss, self.cfg.batch_grad)
        backward_and_step(self.layers, delta, self.opt)
        return loss

    def fixed_accuracy(self, x, y, images: int) -> float:
        accuracy = float(_scores(self.layers, x, y)[0].mean())
        if self.left_at is None and accuracy > LEFT_CHANCE:
            self.left_at = images
        return accuracy


def train(cfg, run) -> dict[str, float]:
    digits = load(cfg.data_dir, cfg.train_size, cfg.test_size, run.device)
    net = Learner(cfg, cfg.network, run.device)
    yardstick = post_mlp(cfg)
    # Its own generator, seeded as the runner seeds the global one: the same weights as the MLP
    # grid point of this seed, whatever the network beside it draws.
    mlp = net if yardstick == cfg else Learner(yardstick, "mlp", run.device, torch.Generator().manual_seed(run.seed))
    n, batch = len(digits.train_y), cfg.batch_size
    steps = cfg.images // batch
    checks = set(check_points(steps, batch))
    picker = torch.Generator().manual_seed(10_000 + run.seed)  # its own stream: evaluating never
    # changes which images the networks train on
    fixed_x, fixed_y = balanced(digits.test_x, digits.test_y, cfg.eval_size)
    curves, running, seen, epoch1 = [], torch.zeros((), device=run.device), 0, {}

    def check(step: int) -> None:
        images = step * batch
        if run.trace.due(images):  # first: the evaluation below overwrites the last step's inputs
            run.trace.record(images, *observe(net.layers, digits.train_x[:BATCH], net.opt))
        pick = torch.randperm(n, generator=picker)[: cfg.eval_size].to(run.device)
        right, errors = _scores(net.layers, digits.train_x[pick], digits.train_y[pick])
        metrics = {
            "post_eval_accuracy": float(right.mean()),
            "post_eval_error": float(errors.sum()),
            "fixed_eval_accuracy": net.fixed_accuracy(fixed_x, fixed_y, images),
        }
        metrics["mlp_fixed_eval_accuracy"] = (
            metrics["fixed_eval_accuracy"] if mlp is net else mlp.fixed_accuracy(fixed_x, fixed_y, images)
        )
        curves.append((step, metrics["post_eval_accuracy"], metrics["fixed_eval_accuracy"], metrics["post_eval_error"]))
        if seen:
            metrics["train_loss"] = float(running) / seen
        run.log(images, **metrics)  # the x axis counts images, as the post's plots do

    check(0)
    start, step, order = time.perf_counter(), 0, torch.empty(0, dtype=torch.long)
    while step < steps:
        if len(order) < batch:  # a new pass over the training digits, in a new order
            order = torch.cat([order, torch.randperm(n)])
        pick, order = order[:batch].to(run.device), order[batch:]
        step += 1
        running += net.step(digits.train_x[pick], digits.train_y[pick], run, step * batch)
        if mlp is not net:
            mlp.step(digits.train_x[pick], digits.train_y[pick], run, step * batch)
        seen += batch
        if (step - 1) * batch < POST_EPOCH <= step * batch:  # the post's first epoch, every test digit
            epoch1 = {
                "test_accuracy_at_post_epoch": _test_accuracy(net, digits),
                "mlp_test_accuracy_at_post_epoch": _test_accuracy(mlp, digits),
            }
        if step in checks:
            check(step)
            running.zero_()
            seen = 0
    seconds = time.perf_counter() - start
    run.image("first_layer", first_layer_picture(net.layers).cpu())
    final = final_metrics(net, mlp, digits, cfg, curves, picker, steps * batch, seconds / max(1, steps * batch))
    # a budget short of the post's first epoch: its mark is the budget's end, already scored
    final |= epoch1 or {
        "test_accuracy_at_post_epoch": final["test_accuracy"],
        "mlp_test_accuracy_at_post_epoch": final["mlp_test_accuracy"],
    }
    run.log(steps * batch, **final)  # so the report's curves end on the final numbers
    return final


def _test_accuracy(learner, digits) -> float:
    return float(_scores(learner.layers, digits.test_x, digits.test_y)[0].mean())


def _std(values: torch.Tensor) -> float:
    return float(values.std()) if len(values) > 1 else 0.0


def final_metrics(net, mlp, digits, cfg, curves, picker, images, seconds_per_image) -> dict[str, float]:
    test_right, test_errors = _scores(net.layers, digits.test_x, digits.test_y)
    late = torch.tensor([c[1:] for c in curves[len(curves) // 2 :]])  # the second half of the checks
    pool = _scores(net.layers, digits.train_x[:SAMPLING_POOL], digits.train_y[:SAMPLING_POOL])[0].cpu()
    draws = torch.stack(
        [pool[torch.randperm(len(pool), generator=picker)[: cfg.eval_size]].mean() for _ in range(SAMPLING_DRAWS)]
    )
    # When each network left chance, in images; one that never did is counted at the whole budget
    # (a lower bound), and left_chance says which it is.
    left = net.left_at if net.left_at is not None else images
    mlp_left = mlp.left_at if mlp.left_at is not None else images
    mlp_accuracy = _test_accuracy(mlp, digits)
    start, peak = curves[0][3] / cfg.eval_size, max((c[3] for c in curves[1:]), default=curves[0][3]) / cfg.eval_size
    return {
        "test_accuracy": float(test_right.mean()),
        "mlp_test_accuracy": mlp_accuracy,
        # The post's expectation: "adding a Convolutional layer should improve the accuracy".
        "test_accuracy_vs_mlp": float(test_right.mean()) - mlp_accuracy,
        "test_error_per_image": float(test_errors.mean()),
        "images_to_leave_chance": float(left),
        "left_chance": float(net.left_at is not None),
        "mlp_images_to_leave_chance": float(mlp_left),
        "mlp_left_chance": float(mlp.left_at is not None),
        # The post's contrast: how many times the post's MLP's images the network needs to leave
        # chance (1 for the post's MLP itself; a lower bound when the network never left).
        "plateau_vs_mlp": left / mlp_left,
        # The post's curve late in training: how far its evaluation jumps between checks, next to
        # the same-sized fixed set (the network's own changes) ...
        "post_eval_accuracy": curves[-1][1],
        "post_eval_error": curves[-1][3],
        # The post's "the error blows up": the worst evaluation error per digit once training
        # began, against the untrained network's (check 0). A finite climb counts as a blow-up as
        # surely as an overflow does; one the network then recovers from is still one.
        "start_eval_error_per_digit": start,
        "peak_eval_error_per_digit": peak,
        "blew_up": float(peak > BLOW_UP * start),
        "post_eval_spread": _std(late[:, 0]),
        "fixed_eval_spread": _std(late[:, 1]),
        "post_eval_min": float(late[:, 0].min()),
        "post_eval_max": float(late[:, 0].max()),
        # ... and the spread the random subsets alone cause, at the final weights.
        "sampling_spread": _std(draws),
        "ms_per_image": 1000 * seconds_per_image,  # training, the MLP beside it, and the checks
    }
