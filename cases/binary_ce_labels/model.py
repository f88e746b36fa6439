"""binary_ce_labels's data, network and the two losses: Keras's binary cross-entropy as the post
ran it (labels 0-9 on one sigmoid output) and the multi-class head its fix puts in its place.

The data: scikit-learn's 1,797 handwritten digits (8x8, raw pixels 0..16 as the post fed MNIST's raw
0..255; nothing is downloaded), split once into 1,400 training and 397 test digits by a fixed
permutation that no run seed changes; Keras's `validation_split=0.33` takes the last third of the
1,400 for validation, unshuffled, as it does.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from failbench.datasets import digits

VALIDATION_SPLIT = 0.33  # the post: `validation_split=0.33`
N_CLASSES = 10
KERAS_EPSILON = 1e-7  # keras.backend.epsilon(): binary_crossentropy clips the output to [eps, 1 - eps]


def load(device: torch.device, scale: float = 1.0) -> tuple[torch.Tensor, ...]:
    """fit_x, fit_y, val_x, val_y, test_x, test_y on `device`: the digits flattened to 64 raw pixels
    divided by `scale`, the last third of the training digits kept apart for validation."""
    train_x, train_y, test_x, test_y = digits(device)
    train_x, test_x = train_x.flatten(1) / scale, test_x.flatten(1) / scale
    n_fit = len(train_y) - math.ceil(len(train_y) * VALIDATION_SPLIT)  # Keras keeps the last 33% apart
    return train_x[:n_fit], train_y[:n_fit], train_x[n_fit:], train_y[n_fit:], test_x, test_y


def glorot_zero(layer: nn.Linear) -> nn.Linear:
    """Keras's Dense defaults: glorot_uniform kernel, zero bias."""
    nn.init.xavier_uniform_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


class DenseNet(nn.Module):
    """The post's model: Dense(64, relu) -> Dense(outputs, activation); 1 output and a sigmoid (the
    post's) or 10 and a softmax (its fix). Like a Keras model, it returns the activation's output,
    the probabilities the loss is then given."""

    def __init__(self, outputs: int = 1, hidden: int = 64):
        super().__init__()
        self.hidden = glorot_zero(nn.Linear(64, hidden))
        self.relu = nn.ReLU()
        self.out = glorot_zero(nn.Linear(hidden, outputs))
        self.activation = nn.Sigmoid() if outputs == 1 else nn.Softmax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(self.out(self.relu(self.hidden(x))))


def keras_binary_crossentropy(output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Keras 2's `binary_crossentropy` on a sigmoid output, per sample: the output clipped to
    [1e-7, 1 - 1e-7], turned back into a logit log(o / (1 - o)), then
    sigmoid_cross_entropy_with_logits against the label as given: -y log o - (1 - y) log(1 - o).
    With y > 1 the second term rewards o -> 1 without bound, until the clip, where it stops at
    (1 - y) x 15.94 (float32) and its gradient is 0."""
    clipped = output.squeeze(1).clamp(KERAS_EPSILON, 1 - KERAS_EPSILON)
    return F.binary_cross_entropy_with_logits(torch.log(clipped / (1 - clipped)), y.to(clipped.dtype), reduction="none")


def keras_sparse_categorical_crossentropy(output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Keras 2's `sparse_categorical_crossentropy` on a softmax output, per sample: -log of the
    label's probability, clipped to [1e-7, 1 - 1e-7]."""
    return -output.gather(1, y[:, None]).squeeze(1).clamp(KERAS_EPSILON, 1 - KERAS_EPSILON).log()


def predicted_class(output: torch.Tensor) -> torch.Tensor:
    """Keras's accuracy for each head: one sigmoid output, round(o) (its binary_accuracy); ten
    outputs, the argmax."""
    return (output.squeeze(1) > 0.5).long() if output.shape[1] == 1 else output.argmax(1)
