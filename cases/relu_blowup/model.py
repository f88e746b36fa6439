"""The post's network, written the way its C++ is: a hand-rolled forward, backward and update.

One 3x3x3 filter (no bias in the post's code) -> ReLU -> logistic regression on the flattened map.
The backward pass is explicit because the failure lives in it: the post's classifier hands back
`m_pGradients[i] = h * x[i]`, the gradient of its *weights*, as the gradient of its *inputs* (the
chain rule gives h * w[i]). tests/test_relu_blowup.py checks the chain-rule path against autograd.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def draw_shapes(size: int, pixel_max: float) -> tuple[torch.Tensor, torch.Tensor]:
    """A cross (label 0) and a ring (label 1), white on black, 3 RGB channels, 0..pixel_max.

    Both shapes light the same number of pixels at size 32 (228 per channel), so neither image is
    brighter on average and the classifier must use the shape.
    """
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    centre = (size - 1) / 2
    arm, reach = size * 0.08, size * 0.35
    cross = (
        (((xx - centre).abs() <= arm) | ((yy - centre).abs() <= arm))
        & ((xx - centre).abs() <= reach)
        & ((yy - centre).abs() <= reach)
    )
    radius = torch.sqrt((xx - centre) ** 2 + (yy - centre) ** 2)
    ring = (radius <= reach) & (radius >= reach - size * 0.12)
    return tuple(m.float().expand(3, -1, -1).clone() * pixel_max for m in (cross, ring))


@dataclass
class Params:
    filter: torch.Tensor  # 1x3x3x3
    weights: torch.Tensor  # size*size
    bias: torch.Tensor  # scalar


def init_params(size: int, init: str, device: torch.device) -> Params:
    if init == "uniform_0_1":  # the post: "The weights are all random numbers between 0.0f-1.0f"
        filt, weights = torch.rand(1, 3, 3, 3), torch.rand(size * size)
    elif init == "normal_0.02":  # the answer: "A normal distribution with mean 0 and std 0.02"
        filt, weights = torch.randn(1, 3, 3, 3) * 0.02, torch.randn(size * size) * 0.02
    elif init == "torch_default":  # nn.Conv2d(3, 1, 3, bias=False) and nn.Linear(size*size, 1) as built
        conv, linear = torch.nn.Conv2d(3, 1, 3, padding=1, bias=False), torch.nn.Linear(size * size, 1)
        filt, weights = conv.weight.detach(), linear.weight.detach()[0]  # U(+-1/sqrt(27)), U(+-1/size)
        return Params(filt.to(device), weights.to(device), linear.bias.detach()[0].to(device))  # bias U(+-1/size)
    else:
        raise ValueError(f"unknown init {init!r}")
    return Params(filt.to(device), weights.to(device), torch.zeros((), device=device))


def standardised(images: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """Each channel to zero mean and unit variance over the training images (what
    torchvision's Normalize does with the dataset's own mean and std)."""
    stacked = torch.stack(images)
    mean, std = stacked.mean(dim=(0, 2, 3), keepdim=True), stacked.std(dim=(0, 2, 3), keepdim=True)
    return tuple((stacked - mean) / std)


def activate(conv: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "relu":
        return conv.relu()
    if activation == "leaky_relu":
        return F.leaky_relu(conv, 0.01)  # PyTorch's default negative slope
    raise ValueError(f"unknown activation {activation!r}")


def activation_slope(conv: torch.Tensor, activation: str) -> torch.Tensor:
    negative = 0.0 if activation == "relu" else 0.01
    return torch.where(conv > 0, 1.0, negative)


def forward(p: Params, image: torch.Tensor, activation: str):
    conv = F.conv2d(image[None], p.filter, padding=1)  # 'same': the post indexes input by output size
    mapped = activate(conv, activation)
    logit = p.weights @ mapped.flatten() + p.bias
    return conv, mapped, logit


def gradients(
    p: Params, image: torch.Tensor, label: float, activation: str, backward: str, bias_step: str
) -> tuple[torch.Tensor, ...]:
    """Gradients of the log-loss for one image (filter, weights, bias), as the post computes them
    or by the chain rule, then the logit they came from (its overflow is the first sign of
    divergence)."""
    conv, mapped, logit = forward(p, image, activation)
    x = mapped.flatten()
    h = torch.sigmoid(logit) - label  # the post: `float h = output - y;`
    grad_weights = h * x  # the post: `float error = h*x[i-1]; m_pGradients[i-1] = error;`
    if bias_step == "mean_weight_gradient":  # the post: `m_pWeights[0] -= learningRate*average;`
        grad_bias = grad_weights.mean()
    else:
        grad_bias = h
    if backward == "post":  # m_pGradients (= h*x) is what the conv layer receives
        grad_mapped = grad_weights
    elif backward == "chain_rule":
        grad_mapped = h * p.weights
    else:
        raise ValueError(f"unknown backward {backward!r}")
    grad_conv = grad_mapped.view_as(conv) * activation_slope(conv, activation)
    grad_filter = torch.nn.grad.conv2d_weight(image[None], p.filter.shape, grad_conv, padding=1)
    return grad_filter, grad_weights, grad_bias, logit


def clip(grads: tuple[torch.Tensor, ...], max_norm: float) -> tuple[torch.Tensor, ...]:
    """Scale all gradients together to a joint L2 norm of at most max_norm, the rule of
    torch.nn.utils.clip_grad_norm_ (same 1e-6 guard)."""
    norm = torch.nn.utils.get_total_norm(list(grads))
    scale = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
    return tuple(g * scale for g in grads)
