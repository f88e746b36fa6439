"""nan_cross_entropy's data, network and the losses the post and its fixes write.

The data: scikit-learn's 1,797 handwritten digits (8x8, 0..16, shipped with the package: nothing
is downloaded), split once into 1,400 training and 397 test digits by a fixed permutation that no
run seed changes. The post names no data set; its 10 classes, 7,000 training and 2,100 test images
(as its accuracies read: 0.101429 = 710/7,000) and 99% test accuracy read like a digit set.
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


class DigitNet(nn.Module):
    """conv 3x3 (1 -> `maps` maps, 'same') -> ReLU -> linear (maps x 64 -> 10): the logits."""

    def __init__(self, maps: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(1, maps, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(maps * 64, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.relu(self.conv(x)).flatten(1))


def post_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The post's `-tf.reduce_sum(Y_*tf.log(Y))` with Y = softmax(logits): summed over the batch.
    A probability that underflows to exactly 0 gives log(0) = -inf, and 0 * -inf = NaN."""
    return -(F.one_hot(y, N_CLASSES) * torch.log(F.softmax(logits, dim=1))).sum()


def epsilon_loss(logits: torch.Tensor, y: torch.Tensor, delta: float = 1e-7) -> torch.Tensor:
    """The book the post quotes: `-np.sum(t * np.log(y + delta))`, delta = 1e-7."""
    return -(F.one_hot(y, N_CLASSES) * torch.log(F.softmax(logits, dim=1) + delta)).sum()


def logits_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The post's fix, `softmax_cross_entropy_with_logits`, summed as its loss was: log-softmax
    computed from the logits (log-sum-exp), which never takes the log of an underflowed 0."""
    return F.cross_entropy(logits, y, reduction="sum")


LOSSES = {"post": post_loss, "epsilon": epsilon_loss, "logits": logits_loss}


def logit_gap(logits: torch.Tensor) -> float:
    """The largest gap between an image's highest and lowest logit: past 103.97 (150 ln 2) the lowest
    class's softmax probability exp(-gap) is below half of float32's smallest subnormal (2^-149 =
    1.4e-45) and rounds to exactly 0."""
    return float((logits.max(1).values - logits.min(1).values).max())


def zero_share(logits: torch.Tensor) -> float:
    """The share of softmax probabilities that are exactly 0 (underflowed)."""
    return float((F.softmax(logits, dim=1) == 0).float().mean())
