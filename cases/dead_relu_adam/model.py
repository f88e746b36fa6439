"""dead_relu_adam's data and network.

The data: scikit-learn's 1,797 handwritten digits (8x8, 0..16, shipped with the package: nothing is
downloaded), split once into 1,400 training and 397 test digits by a fixed permutation that no run
seed changes. The post names no data set; its loss of 2.30 = ln 10 is a 10-class classifier at
chance, and digits are the usual first one.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from failbench.datasets import digits

N_CLASSES = 10


def load(device: torch.device) -> tuple[torch.Tensor, ...]:
    """train_x, train_y, test_x, test_y on `device`: the digits as 1-channel images, pixels to [0, 1]."""
    train_x, train_y, test_x, test_y = digits(device)
    return train_x[:, None] / 16.0, train_y, test_x[:, None] / 16.0, test_y


ACTIVATIONS = {"relu": nn.ReLU, "leaky": lambda: nn.LeakyReLU(0.01)}  # torch's default slope, 0.01


class DigitCNN(nn.Module):
    """The tutorial CNN: conv 3x3 (1 -> 16) -> act -> pool 2 -> conv 3x3 (16 -> 32) -> act -> pool 2
    -> linear (128 -> 64) -> act -> linear (64 -> 10): the logits, or their softmax where
    `softmax_output` (the thread's first bug: a softmax fed to CrossEntropyLoss)."""

    def __init__(self, activation: str = "relu", softmax_output: bool = False):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {activation!r}; choose from {', '.join(ACTIVATIONS)}")
        act = ACTIVATIONS[activation]
        self.conv1, self.act1 = nn.Conv2d(1, 16, 3, padding=1), act()
        self.conv2, self.act2 = nn.Conv2d(16, 32, 3, padding=1), act()
        self.fc1, self.act3 = nn.Linear(32 * 2 * 2, 64), act()
        self.fc2 = nn.Linear(64, N_CLASSES)
        self.softmax_output = softmax_output

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.act1(self.conv1(x)), 2)
        x = F.max_pool2d(self.act2(self.conv2(x)), 2)
        out = self.fc2(self.act3(self.fc1(x.flatten(1))))
        return F.softmax(out, dim=1) if self.softmax_output else out
