"""positive_init's data, weights and the post's hand-written backpropagation.

The data: scikit-learn's 1,797 handwritten digits (8x8, 0..16 scaled to [0, 1] as MNIST's 0..255
pixels are in the book the post studies), flattened to 64 inputs and split once into 1,400
training and 397 test digits by a fixed permutation that no run seed changes. The post trains on
MNIST's 784-pixel digits; nothing may be downloaded here, and the failure needs only that the
inputs are non-negative and many (below: the hidden pre-activation is ~10 here, ~50 on MNIST).

The network and its update follow "A Step by Step Backpropagation Example", which the post
follows: sigmoid hidden and output units, the total error E = sum_j 1/2 (t_j - o_j)^2, and one
gradient step per training example.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from failbench.datasets import digits

N_INPUTS, N_CLASSES = 64, 10
FLAT_SLOPE = 0.01  # a sigmoid unit whose slope s(1 - s) is under 1% of its peak 1/4 passes almost nothing back


def load(device: torch.device) -> tuple[torch.Tensor, ...]:
    """train_x, train_y, test_x, test_y on `device`: the digits flattened to 64 inputs in [0, 1]."""
    train_x, train_y, test_x, test_y = digits(device)
    return train_x.flatten(1) / 16.0, train_y, test_x.flatten(1) / 16.0, test_y


# each weight and bias drawn uniformly from this range
INITS = {
    "post": (0.0, 1.0),  # the post: "Math.random() (i.e. a random real number between 0 and 0.999....)"
    "centred": (-0.5, 0.5),  # the post's fix: "a random number between -0.5 and 0.5"
    "small_positive": (0.0, 0.1),  # still all positive, a tenth the size: the sign or the scale?
}


@dataclass
class Params:
    w1: torch.Tensor  # (hidden, 64)
    b1: torch.Tensor
    w2: torch.Tensor  # (10, hidden)
    b2: torch.Tensor

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return (self.w1, self.b1, self.w2, self.b2)


def init_params(init: str, hidden: int, device: torch.device) -> Params:
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose from {', '.join(INITS)}")
    low, high = INITS[init]
    shapes = ((hidden, N_INPUTS), (hidden,), (N_CLASSES, hidden), (N_CLASSES,))
    return Params(*(torch.empty(s, device=device).uniform_(low, high) for s in shapes))


def forward(p: Params, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The hidden pre-activation, the hidden output and the network's output (both sigmoid)."""
    pre = torch.addmm(p.b1, x, p.w1.T)
    hidden = torch.sigmoid(pre)
    return pre, hidden, torch.sigmoid(torch.addmm(p.b2, hidden, p.w2.T))


def total_error(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The post's "total error", per example: sum_j 1/2 (t_j - o_j)^2 with one-hot targets t."""
    return 0.5 * ((F.one_hot(y, N_CLASSES).to(out.dtype) - out) ** 2).sum(1)


def gradients(p: Params, x: torch.Tensor, y: torch.Tensor, loss: str) -> tuple[Params, torch.Tensor]:
    """The gradients of the loss (the mean over the examples in x) by backpropagation as the
    post's source writes it: the output delta (o - t) o (1 - o) under the total error, (o - t)
    under cross-entropy (its o (1 - o) cancels); the hidden delta (delta_out . w2) h (1 - h)."""
    _, hidden, out = forward(p, x)
    target = F.one_hot(y, N_CLASSES).to(out.dtype)
    if loss == "squared":
        delta_out = (out - target) * out * (1 - out)
    elif loss == "cross_entropy":
        delta_out = out - target
    else:
        raise ValueError(f"unknown loss {loss!r}; choose from squared, cross_entropy")
    delta_hidden = (delta_out @ p.w2) * hidden * (1 - hidden)
    n = len(x)
    grads = Params(delta_hidden.T @ x / n, delta_hidden.mean(0), delta_out.T @ hidden / n, delta_out.mean(0))
    return grads, out


def flat_share(hidden: torch.Tensor) -> float:
    """The share of (digit, hidden unit) pairs on the sigmoid's flat region: slope under 1% of its
    peak, where the unit passes back less than 1% of the error that reaches it."""
    return float((hidden * (1 - hidden) < FLAT_SLOPE * 0.25).float().mean())
