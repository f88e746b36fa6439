"""xor_plateau's network and its one iteration, ported line by line from the post's Octave.

A 2-2-1 sigmoid network with bias units, the four XOR-type examples (the post's targets: 1 where
the inputs agree), cross-entropy cost, and gradient descent on the sum over the four examples. The
post's loop adds each iteration's gradient to `Theta1_grad` and `Theta2_grad`, which it sets to
zero once, before the loop, and never again: the step is alpha / m times the sum of every gradient
so far. Four examples and nine weights: numpy in float64, as Octave computes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

X = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float64)  # the post's `X`
Y = np.array([1, 0, 0, 1], dtype=np.float64)  # the post's `Y = [1; 0; 0; 1]`
A1 = np.hstack([np.ones((4, 1)), X])  # `a1 = [1 X(i, :)]'`, the four at once
M = len(X)


@dataclass
class Net:
    theta1: np.ndarray  # (2, 3): hidden units x (bias, inputs)
    theta2: np.ndarray  # (1, 3): output x (bias, hidden units)


def init(eps: float, rng: np.random.Generator) -> Net:
    """The post's `rand(2, 3) * 2 * eps - eps`: uniform on [-eps, eps)."""
    return Net(rng.random((2, 3)) * 2 * eps - eps, rng.random((1, 3)) * 2 * eps - eps)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def forward(net: Net) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The hidden pre-activation (4, 2), the hidden activations with the bias unit (4, 3), the
    output a3 (4,)."""
    z2 = A1 @ net.theta1.T
    a2 = np.hstack([np.ones((M, 1)), sigmoid(z2)])
    return z2, a2, sigmoid(a2 @ net.theta2.T)[:, 0]


def cost(a3: np.ndarray) -> float:
    """The post's J: -(1/m) sum y log a3 + (1 - y) log(1 - a3)."""
    return float(-np.mean(Y * np.log(a3) + (1 - Y) * np.log(1 - a3)))


def gradients(net: Net) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """This iteration's sums over the four examples, as the post's loop adds them up
    (`delta3 = a3 - Y(i)`, `delta2 = ((Theta2' * delta3) .* (a2 .* (1 - a2)))(2:end)`), and a3."""
    _, a2, a3 = forward(net)
    delta3 = (a3 - Y)[:, None]
    delta2 = (delta3 @ net.theta2)[:, 1:] * a2[:, 1:] * (1 - a2[:, 1:])
    return delta2.T @ A1, delta3.T @ a2, a3
