"""The post's three networks, built the way its layer.py is: layers with a forward, a hand-written
backward and an update `weights -= lr * gradient`.

Hand-written rather than autograd for speed: one image per step spends most of its time in
framework overhead, and `addr_` updates the 3920x100 weights in one pass without materialising
their gradient (~3x faster per image than nn.Module + autograd, torch 2.13 CPU, measured).
tests/test_slow_conv_mnist.py checks every gradient against autograd.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from cases.slow_conv_mnist.conv_impls import im2col_torch_backward, im2col_torch_forward


class Conv:
    def __init__(self, c_in: int, c_out: int, k: int = 5):
        self.w, self.b = torch.empty(c_out, c_in, k, k), torch.empty(c_out)

    def forward(self, x, train=True):
        if not train:  # evaluation of many digits: torch's batched kernel, the same arithmetic
            return F.conv2d(x, self.w, self.b)
        out, self.cols = im2col_torch_forward(x, self.w, self.b)
        return out

    def backward(self, d, need_input=True):
        self.dw, self.db, dx = im2col_torch_backward(self.cols, self.w, d, need_input)
        return dx

    def update(self, lr):
        self.w.sub_(self.dw, alpha=lr)
        self.b.sub_(self.db, alpha=lr)


class Linear:
    def __init__(self, n_in: int, n_out: int):
        self.w, self.b = torch.empty(n_out, n_in), torch.empty(n_out)

    def forward(self, x):
        self.x = x
        return torch.addmm(self.b, x, self.w.t())

    def backward(self, d, need_input=True):
        self.d = d
        return d @ self.w if need_input else None

    def update(self, lr):
        if self.x.shape[0] == 1:  # one image: a rank-1 update, w -= lr * d x^T
            self.w.addr_(self.d[0], self.x[0], alpha=-lr)
        else:
            self.w.addmm_(self.d.t(), self.x, alpha=-lr)
        self.b.sub_(self.d.sum(0), alpha=lr)


class Activation:
    def __init__(self, kind: str):
        self.kind = kind

    def forward(self, x):
        self.y = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu}[self.kind](x)
        return self.y

    def backward(self, d, need_input=True):
        # Derivatives from the outputs, as the post's layers do: 1 - y^2, y(1 - y), [y > 0]; ATen's
        # fused kernels do each in one call instead of three (per-call overhead is the cost here).
        if self.kind == "tanh":
            return torch.ops.aten.tanh_backward(d, self.y)
        if self.kind == "sigmoid":
            return torch.ops.aten.sigmoid_backward(d, self.y)
        return d * (self.y > 0)


class MaxPool:  # 2x2, stride 2
    def forward(self, x):
        self.x = x
        y, self.where = F.max_pool2d(x, 2, return_indices=True)
        return y

    def backward(self, d, need_input=True):  # each gradient goes to the input that won the max
        return torch.ops.aten.max_pool2d_with_indices_backward(
            d, self.x, [2, 2], [2, 2], [0, 0], [1, 1], False, self.where)


class Flatten:  # the post's "Linearize"
    def forward(self, x):
        self.shape = x.shape
        return x.flatten(1)

    def backward(self, d, need_input=True):
        return d.view(self.shape)


def build(network: str, activation: str) -> list:
    """The post's architectures, layer for layer. `activation` "post" is tanh after each
    convolution and sigmoid after each hidden fully connected layer, as the post lists them."""
    conv_act = fc_act = activation
    if activation == "post":
        conv_act, fc_act = "tanh", "sigmoid"
    a, b = (lambda: Activation(conv_act)), (lambda: Activation(fc_act))
    if network == "mlp":  # Linearize 1024 -> FC 100 (sigmoid) -> FC 10
        return [Flatten(), Linear(1024, 100), b(), Linear(100, 10)]
    if network == "conv":  # Conv 5@5x5 (tanh) -> Linearize 3920 -> FC 100 (sigmoid) -> FC 10
        return [Conv(1, 5), a(), Flatten(), Linear(3920, 100), b(), Linear(100, 10)]
    if network == "lenet5":  # the post's LeNet-5; its FC 120->86 is "tanh or sigmoid": sigmoid here
        return [Conv(1, 6), a(), MaxPool(), Conv(6, 16), a(), MaxPool(), Conv(16, 120), a(),
                Flatten(), Linear(120, 86), b(), Linear(86, 10)]
    raise ValueError(f"unknown network {network!r}")


def init(layers: list, how: str, generator: torch.Generator | None = None) -> None:
    """`post`: the post's "Xavier (2 / volume size)" as a standard deviation, N(0, (2/V)^2), for
    weights and biases, V the size of the layer's input volume (C*H*W; n_in for a fully connected
    layer). `variance`: the same formula as a variance, N(0, 2/V). `glorot`: Glorot & Bengio
    (2010) uniform, biases zero."""
    shape = (1, 1, 32, 32)
    for layer in layers:
        params = isinstance(layer, (Conv, Linear))
        volume = math.prod(shape[1:])
        if params and how in ("post", "variance"):
            std = 2 / volume if how == "post" else math.sqrt(2 / volume)
            for p in (layer.w, layer.b):
                p.copy_(torch.randn(p.shape, generator=generator) * std)
        elif params and how == "glorot":
            fan_in, fan_out = layer.w[0].numel(), layer.w.shape[0] * layer.w[0, 0].numel()
            bound = math.sqrt(6 / (fan_in + fan_out))
            layer.w.copy_((torch.rand(layer.w.shape, generator=generator) * 2 - 1) * bound)
            layer.b.zero_()
        elif params:
            raise ValueError(f"unknown init {how!r}")
        shape = _shape_after(layer, shape)


def _shape_after(layer, shape):
    if isinstance(layer, Conv):
        k = layer.w.shape[-1]
        return (shape[0], layer.w.shape[0], shape[2] - k + 1, shape[3] - k + 1)
    if isinstance(layer, MaxPool):
        return (shape[0], shape[1], shape[2] // 2, shape[3] // 2)
    if isinstance(layer, Flatten):
        return (shape[0], math.prod(shape[1:]))
    if isinstance(layer, Linear):
        return (shape[0], layer.w.shape[0])
    return shape


def to(layers: list, device: torch.device) -> None:
    for layer in layers:
        if isinstance(layer, (Conv, Linear)):
            layer.w, layer.b = layer.w.to(device), layer.b.to(device)


def forward(layers: list, x: torch.Tensor, train: bool = True) -> torch.Tensor:
    for layer in layers:
        x = layer.forward(x, train) if isinstance(layer, Conv) else layer.forward(x)
    return x


def loss_and_delta(out: torch.Tensor, labels: torch.Tensor, loss: str):
    """Per-image loss (summed over the batch) and dLoss/dout averaged over the batch.
    `sse`: E = 1/2 sum_k (y_k - t_k)^2 against one-hot targets, the post's sum of squared errors on
    a linear output layer. `softmax_ce`: softmax then cross-entropy."""
    target = F.one_hot(labels, out.shape[1]).to(out.dtype)
    if loss == "sse":
        diff = out - target
        return 0.5 * (diff * diff).sum(), diff / out.shape[0]
    if loss == "softmax_ce":
        return F.cross_entropy(out, labels, reduction="sum"), (out.softmax(1) - target) / out.shape[0]
    raise ValueError(f"unknown loss {loss!r}")


def backward_and_update(layers: list, delta: torch.Tensor, lr: float) -> None:
    """Every gradient is computed before any weight moves, as the post's optimizer does."""
    first = next(i for i, layer in enumerate(layers) if hasattr(layer, "update"))
    for i in range(len(layers) - 1, first - 1, -1):  # nothing below the first weights needs a gradient
        delta = layers[i].backward(delta, need_input=i > first)
    for layer in layers[first:]:
        if hasattr(layer, "update"):
            layer.update(lr)
