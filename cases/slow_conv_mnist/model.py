"""The post's three networks, built the way its layer.py is: layers with a forward, a hand-written
backward, and an optimizer that moves the weights after a batch.

Hand-written rather than autograd, as the post's are: its update is `weights -= learningRate *
gradientWeights`, "where gradientWeights is the accumulation of gradients of a batch", so the
gradient here is summed over the batch (`batch_grad="sum"`); the `averaged_batches` fix divides it
by the batch size. tests/test_slow_conv_mnist.py checks every step against autograd.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from failbench.cases.slow_conv_mnist.conv_impls import im2col_torch_backward, im2col_torch_forward


class Conv:
    def __init__(self, c_in: int, c_out: int, k: int = 5):
        self.w, self.b = torch.empty(c_out, c_in, k, k), torch.empty(c_out)

    def forward(self, x, train=True):
        if not train:  # evaluation of many digits: torch's batched kernel, the same arithmetic
            return F.conv2d(x, self.w, self.b)
        self.x = x
        if x.shape[0] == 1 or x.shape[1] == 1:  # im2col: faster on one image or one channel
            out, self.cols = im2col_torch_forward(x, self.w, self.b)
            return out
        self.cols = None
        return F.conv2d(x, self.w, self.b)

    def backward(self, d, need_input=True):
        if self.cols is not None:
            self.dw, self.db, dx = im2col_torch_backward(self.cols, self.w, d, need_input)
            return dx
        # Several channels in a batch (LeNet-5's inner layers): ATen's convolution backward is
        # 3-10x faster than im2col there (16 images, torch 2.13 CPU, measured); it sums over the batch.
        dx, self.dw, self.db = torch.ops.aten.convolution_backward(
            d, self.x, self.w, [self.w.shape[0]], [1, 1], [0, 0], [1, 1], False, [0, 0], 1, [need_input, True, True]
        )
        return dx

    def grads(self):
        return self.dw, self.db

    def sgd(self, lr):
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

    def grads(self):
        return self.d.t() @ self.x, self.d.sum(0)

    def sgd(self, lr):  # w -= lr * d^T x in one pass, without materialising the gradient
        if self.x.shape[0] == 1:
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
            d, self.x, [2, 2], [2, 2], [0, 0], [1, 1], False, self.where
        )


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
        return [
            Conv(1, 6),
            a(),
            MaxPool(),
            Conv(6, 16),
            a(),
            MaxPool(),
            Conv(16, 120),
            a(),
            Flatten(),
            Linear(120, 86),
            b(),
            Linear(86, 10),
        ]
    raise ValueError(f"unknown network {network!r}")


def params(layers: list) -> list:
    return [layer for layer in layers if isinstance(layer, (Conv, Linear))]


# The post's "Xavier method (2 / volume size)", read four ways: 2/V as a standard deviation or as a
# variance, V the layer's whole input volume (C*H*W) or a unit's fan-in (C*k*k for a convolution;
# the two agree for a fully connected layer). Weights and biases alike, as the post says.
READINGS = {
    "std_volume": (True, "volume"),
    "var_volume": (False, "volume"),
    "std_fanin": (True, "fanin"),
    "var_fanin": (False, "fanin"),
}


def init(layers: list, how: str, generator: torch.Generator | None = None) -> None:
    """`how` is a reading of the post's formula (READINGS) or `glorot`: Glorot & Bengio (2010)
    uniform, U(-a, a) with a = sqrt(6 / (fan_in + fan_out)), biases zero."""
    if how != "glorot" and how not in READINGS:
        raise ValueError(f"unknown init {how!r}; choose from glorot, {', '.join(READINGS)}")
    shape = (1, 1, 32, 32)
    for layer in layers:
        if isinstance(layer, (Conv, Linear)):
            fan_in = layer.w[0].numel()
            if how == "glorot":
                fan_out = layer.w.shape[0] * layer.w[0, 0].numel()
                bound = math.sqrt(6 / (fan_in + fan_out))
                layer.w.copy_((torch.rand(layer.w.shape, generator=generator) * 2 - 1) * bound)
                layer.b.zero_()
            else:
                as_std, over = READINGS[how]
                v = math.prod(shape[1:]) if over == "volume" else fan_in
                std = 2 / v if as_std else math.sqrt(2 / v)
                for p in (layer.w, layer.b):
                    p.copy_(torch.randn(p.shape, generator=generator) * std)
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
    for layer in params(layers):
        layer.w, layer.b = layer.w.to(device), layer.b.to(device)


def forward(layers: list, x: torch.Tensor, train: bool = True) -> torch.Tensor:
    for layer in layers:
        x = layer.forward(x, train) if isinstance(layer, Conv) else layer.forward(x)
    return x


def loss_and_delta(out: torch.Tensor, labels: torch.Tensor, loss: str, batch_grad: str = "sum"):
    """The batch's loss (summed over its images) and dLoss/dout, summed over the batch as the post
    accumulates it (`sum`) or divided by the batch size (`mean`).
    `sse`: E = 1/2 sum_k (y_k - t_k)^2 against one-hot targets, the post's sum of squared errors on
    a linear output layer. `softmax_ce`: softmax then cross-entropy."""
    target = F.one_hot(labels, out.shape[1]).to(out.dtype)
    if loss == "sse":
        value, delta = 0.5 * ((out - target) ** 2).sum(), out - target
    elif loss == "softmax_ce":
        value, delta = F.cross_entropy(out, labels, reduction="sum"), out.softmax(1) - target
    else:
        raise ValueError(f"unknown loss {loss!r}")
    if batch_grad == "mean":
        delta = delta / out.shape[0]
    elif batch_grad != "sum":
        raise ValueError(f"unknown batch_grad {batch_grad!r}")
    return value, delta


class SGD:
    """The post's optimizer: `weights -= learningRate * gradientWeights`, biases too."""

    def __init__(self, lr: float):
        self.lr = lr

    def step(self, layers: list) -> None:
        for layer in params(layers):
            layer.sgd(self.lr)


class Adam:
    """Kingma & Ba (2015), Algorithm 1, with its defaults beta1 0.9, beta2 0.999, eps 1e-8 (those
    of torch.optim.Adam too): each weight's step is lr times its gradient's running mean over its
    running root mean square, so a gradient 1e-6 small moves a weight as far as one of size 1."""

    def __init__(self, lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.lr, self.beta1, self.beta2, self.eps, self.t = lr, beta1, beta2, eps, 0
        self.state: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def step(self, layers: list) -> None:
        self.t += 1
        fix1, fix2 = 1 - self.beta1**self.t, 1 - self.beta2**self.t
        for layer in params(layers):
            for i, (p, g) in enumerate(zip((layer.w, layer.b), layer.grads())):
                m, v = self.state.setdefault((id(layer), i), (torch.zeros_like(p), torch.zeros_like(p)))
                m.mul_(self.beta1).add_(g, alpha=1 - self.beta1)
                v.mul_(self.beta2).addcmul_(g, g, value=1 - self.beta2)
                p.addcdiv_(m, (v / fix2).sqrt_().add_(self.eps), value=-self.lr / fix1)


def optimizer(name: str, lr: float):
    if name == "sgd":
        return SGD(lr)
    if name == "adam":
        return Adam(lr)
    raise ValueError(f"unknown optimizer {name!r}")


def backward_and_step(layers: list, delta: torch.Tensor, opt) -> None:
    """Every gradient is computed before any weight moves, as the post's optimizer does."""
    first = next(i for i, layer in enumerate(layers) if isinstance(layer, (Conv, Linear)))
    for i in range(len(layers) - 1, first - 1, -1):  # nothing below the first weights needs a gradient
        delta = layers[i].backward(delta, need_input=i > first)
    opt.step(layers)
