"""sigmoid_stack's data and network.

The data: scikit-learn's 1,797 handwritten digits (8x8, 0..16, shipped with the package: nothing is
downloaded), split once into 1,400 training and 397 test digits by a fixed permutation that no run
seed changes, pixels scaled to [0, 1]. The post maps binary vectors to real values with data it does
not show; its failure is the network's, "high loss even on the training data", and a 10-class
classifier at chance (ln 10) shows the same plateau with a task that has a clear line.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from failbench.datasets import digits

N_INPUTS, N_CLASSES = 64, 10


def load(device: torch.device) -> tuple[torch.Tensor, ...]:
    """train_x, train_y, test_x, test_y on `device`: the digits flattened to 64 inputs in [0, 1]."""
    train_x, train_y, test_x, test_y = digits(device)
    return train_x.flatten(1) / 16.0, train_y, test_x.flatten(1) / 16.0, test_y


ACTIVATIONS = {"sigmoid": nn.Sigmoid, "relu": nn.ReLU}


def _init(layer: nn.Linear, init: str) -> None:
    """Weights by `init`, biases 0 (what each reading does with them)."""
    fan_in, fan_out = layer.in_features, layer.out_features
    with torch.no_grad():
        layer.bias.zero_()
        if init == "small":  # w = 0.01 * randn: the tutorials' "small random numbers"
            layer.weight.normal_(0.0, 0.01)
        elif init == "unit":  # tf.random_normal's default stddev, 1.0
            layer.weight.normal_(0.0, 1.0)
        elif init == "glorot":  # tf.layers.dense's default, glorot_uniform
            bound = math.sqrt(6.0 / (fan_in + fan_out))
            layer.weight.uniform_(-bound, bound)
        else:
            raise ValueError(f"unknown init {init!r}; choose from small, unit, glorot")


class SigmoidStack(nn.Module):
    """64 -> `depth` x (linear `width` -> activation) -> linear 10: the post's "four hidden layers
    ... and sigmoidal activation functions in each layer", its output the logits."""

    def __init__(self, width: int = 100, depth: int = 4, activation: str = "sigmoid", init: str = "small"):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {', '.join(ACTIVATIONS)}")
        sizes = [N_INPUTS] + [width] * depth
        layers: list[nn.Module] = []
        for a, b in zip(sizes, sizes[1:]):
            layers += [nn.Linear(a, b), ACTIVATIONS[activation]()]
        layers.append(nn.Linear(sizes[-1], N_CLASSES))
        self.net = nn.Sequential(*layers)
        for module in self.net:
            if isinstance(module, nn.Linear):
                _init(module, init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def weights(self) -> list[torch.Tensor]:
        return [m.weight for m in self.net if isinstance(m, nn.Linear)]
