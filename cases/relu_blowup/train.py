"""relu_blowup's training loop: the post's per-image updates, its measurements and its trace.

The config and the declarations (fixes, expectations) are in case.py; the model, the post's
backward pass and update in model.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from failbench.cases.relu_blowup.model import activate, clip, draw_shapes, forward, gradients, init_params, standardised
from failbench.trace import Observed

if TYPE_CHECKING:  # the config is declared beside the fixes that change it
    from failbench.cases.relu_blowup.case import Config


def measure(p, images, labels, cfg: Config) -> dict[str, float]:
    """Final and step metrics: the filter's range, the dead share of the map, loss, accuracy."""
    zero, total, losses, correct = 0, 0, [], 0
    for image, label in zip(images, labels):
        _, mapped, logit = forward(p, image, cfg.activation)
        zero += int((mapped == 0).sum())
        total += mapped.numel()
        losses.append(float(F.binary_cross_entropy_with_logits(logit, torch.tensor(label, device=logit.device))))
        correct += int((logit > 0) == (label == 1.0))
    return {
        "filter_min": float(p.filter.min()),
        "filter_max": float(p.filter.max()),
        "relu_zero_fraction": zero / total,
        "loss": sum(losses) / len(losses),
        "accuracy": correct / len(images),
    }


def observe(p, images, cfg: Config, grads=None) -> list[Observed]:
    """The two layers at a traced step, on both images; `grads` are the last step's (applied)."""
    conv = F.conv2d(torch.stack(images), p.filter, padding=1)
    logits = activate(conv, cfg.activation).flatten(1) @ p.weights + p.bias
    g = grads or (None, None)
    step = [None if x is None else -cfg.lr * x for x in g[:2]]
    return [
        Observed(
            "conv",
            "conv",
            "relu" if cfg.activation == "relu" else "leaky",
            pre=conv,
            weight=p.filter,
            grad=g[0],
            update=step[0],
        ),
        Observed("classifier", "linear", pre=logits[:, None], weight=p.weights, grad=g[1], update=step[1]),
    ]


def train(cfg: Config, run) -> dict[str, float]:
    shapes = draw_shapes(cfg.image_size, cfg.pixel_max)
    images = [im.to(run.device) for im in (standardised(shapes) if cfg.standardise else shapes)]
    labels = (0.0, 1.0)  # the post: cross label 0, circle label 1
    p = init_params(cfg.image_size, cfg.init, run.device)
    every = run.log_every(cfg.steps)
    run.log(0, **measure(p, images, labels, cfg))
    layers = observe(p, images, cfg)
    run.trace.record(0, layers, output=torch.sigmoid(layers[-1].pre))  # the network's output
    for step in range(1, cfg.steps + 1):
        i = (step - 1) % 2
        *grads, logit = gradients(p, images[i], labels[i], cfg.activation, cfg.backward, cfg.bias_step)
        run.guard(step, logit=logit)  # float32 overflow of the logit is where divergence starts
        if cfg.clip_norm > 0:
            grads = clip(grads, cfg.clip_norm)
        p.filter -= cfg.lr * grads[0]
        p.weights -= cfg.lr * grads[1]
        p.bias -= cfg.lr * grads[2]
        run.guard(step, filter=p.filter, weights=p.weights, bias=p.bias)
        if step % every == 0 or step == 1:
            run.log(step, **measure(p, images, labels, cfg))
            if run.trace.due(step):
                layers = observe(p, images, cfg, grads)
                run.trace.record(step, layers, output=torch.sigmoid(layers[-1].pre))
    maps = [forward(p, im, cfg.activation)[1][0, 0] for im in images]
    brightest = max(float(m.max()) for m in maps) or 1.0  # an all-zero map stays black
    for name, m in zip(("cross", "circle"), maps):
        run.image(f"relu_map_{name}", m / brightest)
    return measure(p, images, labels, cfg)
