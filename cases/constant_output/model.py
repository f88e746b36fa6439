"""The post's network (`filtercnnDQN.m`), its hand-written backward pass, and its update rule.

x1 -> conv 3x3, pad 1 (one filter w, bias b) -> x2 -> sigmoid(theta1 x2 + beta1) = x4 (4 units)
-> theta2 x4 + beta2 = x5 (4 outputs). Loss 1/(2n) sum_i ||x5_i - y_i||^2.

The post's backward applies the sigmoid's derivative to the wrong tensor: it writes
`dzdx2 = (theta1' * dzdx4) .* x2 .* (1 - x2)`, with x2 the *conv output* (400 values), where the
chain rule gives `dzdx2 = theta1' * (dzdx4 .* x4 .* (1 - x4))`, with x4 the *sigmoid output*
(4 values). Its dzdtheta1 and dzdbeta1 miss the derivative altogether. Its theta2, beta2 and conv
steps are correct given that dzdx2. tests/test_constant_output.py checks both paths.

MATLAB flattens column-major and torch row-major: a fixed permutation of theta1's columns, which are
i.i.d. at init, so the two nets are the same in distribution.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

from failbench.cases.constant_output.data import N_OUT, SIDE

N_HIDDEN = 4  # the post: `theta1 = rand(4,400) ...`


@dataclass
class Params:
    w: torch.Tensor  # 1x1x3x3 conv filter
    b: torch.Tensor  # conv bias, shape (1,)
    theta1: torch.Tensor  # 4x400
    beta1: torch.Tensor  # 4
    theta2: torch.Tensor  # 4x4
    beta2: torch.Tensor  # 4

    def tensors(self) -> list[torch.Tensor]:
        return [getattr(self, f.name) for f in fields(self)]


WEIGHTS = ("w", "theta1", "theta2")  # the post decays these, not the biases


def init_params(init: str, device: torch.device) -> Params:
    if init == "post":  # the post's ranges, exactly as written
        w = torch.randn(1, 1, 3, 3) * (1 / 200) - 1 / 400  # `randn(3,3,1) * 1/200 - 1/400`
        theta1 = torch.rand(N_HIDDEN, SIDE * SIDE) * (1 / 200) - 1 / 400  # `rand(4,400) * 1/200 - 1/400`
        theta2 = torch.rand(N_OUT, N_HIDDEN) * (1 / 2) - 1 / 4  # `rand(4,4) * 1/2 - 1/4`
    elif init == "torch_default":
        # nn.Conv2d / nn.Linear's default weights, U(-1/sqrt(fan_in), 1/sqrt(fan_in)): fan_in 9, 400, 4.
        w = (torch.rand(1, 1, 3, 3) * 2 - 1) / 9**0.5
        theta1 = (torch.rand(N_HIDDEN, SIDE * SIDE) * 2 - 1) / 400**0.5
        theta2 = (torch.rand(N_OUT, N_HIDDEN) * 2 - 1) / N_HIDDEN**0.5
    else:
        raise ValueError(f"unknown init {init!r}")
    zeros = torch.zeros  # the post: `b = single(0)`, `beta1 = zeros(4,1)`, `beta2 = zeros(4,1)`
    return Params(
        w.to(device),
        zeros(1, device=device),
        theta1.to(device),
        zeros(N_HIDDEN, device=device),
        theta2.to(device),
        zeros(N_OUT, device=device),
    )


def patches(x: torch.Tensor) -> torch.Tensor:
    """The 3x3 neighbourhood of every pixel (zero-padded by 1) as a (9, n * 400) matrix, built once
    per run: the conv is then one (1x9)(9xN) product, ~10x faster than F.conv2d at this size on a CPU."""
    return F.unfold(x, 3, padding=1).permute(1, 0, 2).reshape(9, -1).contiguous()


def forward(p: Params, cols: torch.Tensor):
    """cols = patches(x) -> (x2 flattened to (n, 400), x4 (n, 4), x5 (n, 4))."""
    n = cols.shape[1] // (SIDE * SIDE)
    x2 = torch.addmm(p.b.view(1, 1), p.w.view(1, 9), cols).view(n, -1)  # vl_nnconv(x1, w, b, 'pad', 1)
    x4 = torch.sigmoid(torch.addmm(p.beta1, x2, p.theta1.T))
    x5 = torch.addmm(p.beta2, x4, p.theta2.T)
    return x2, x4, x5


def post_backward(p: Params, cols: torch.Tensor, y: torch.Tensor) -> tuple[Params, torch.Tensor]:
    """The post's backward, line for line, vectorised over the samples; gradients are *sums* over
    the samples, as the post's loop accumulates them. Returns (gradients, x5)."""
    x2, x4, x5 = forward(p, cols)
    dzdx5 = x5 - y  # `dzdx5 = reshape(res.x5,4,1,size(X,4)) - y;`
    dzdx4 = dzdx5 @ p.theta2  # `theta2' * res.dzdx5(:,:,i)`
    dzdtheta2 = dzdx5.T @ x4  # `res.dzdx5(:,:,i) * res.x4(:,i)'`
    dzdbeta2 = dzdx5.sum(0)
    dzdx2 = (dzdx4 @ p.theta1) * x2 * (1 - x2)  # `(theta1' * dzdx4) .* x2 .* (1 - x2)`: x2, not x4
    dzdtheta1 = dzdx4.T @ x2  # `res.dzdx4(:,:,i) * x2'`: no sigmoid derivative
    dzdbeta1 = dzdx4.sum(0)  # `res.dzdbeta1 + res.dzdx4(:,:,i)`: no sigmoid derivative
    dzdw = (cols @ dzdx2.view(-1)).view_as(p.w)  # vl_nnconv's backward
    dzdb = dzdx2.sum().view(1)
    return Params(dzdw, dzdb, dzdtheta1, dzdbeta1, dzdtheta2, dzdbeta2), x5


def summed_loss(p: Params, cols: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """1/2 sum_i ||x5_i - y_i||^2: n times the post's E, so its gradient is on the post's scale."""
    x5 = forward(p, cols)[2]
    return 0.5 * ((x5 - y) ** 2).sum(), x5


def autograd_backward(p: Params, cols: torch.Tensor, y: torch.Tensor) -> tuple[Params, torch.Tensor]:
    """The chain rule by torch.autograd on the same forward and loss, sums over the samples.
    Parameters that already require grad are differentiated in place (no copies per step)."""
    leaves = p.tensors()
    if not all(t.requires_grad for t in leaves):
        leaves = [t.detach().requires_grad_() for t in leaves]
    with torch.enable_grad():
        loss, x5 = summed_loss(Params(*leaves), cols, y)
        grads = torch.autograd.grad(loss, leaves)
    return Params(*grads), x5.detach()


BIASES = ("b", "beta1", "beta2")  # stepped by the gradient only, scaled by 0.1


@torch.no_grad()
def step(p: Params, grads: Params, n: int, lr: float, shrink_rate: float, bias_step_scale: float) -> None:
    """The post's update with momentum 0:
    weights `w - rate * ((1/n) * dzdw + shrinkRate * w)`, biases `b - rate * 0.1 * (1/n) * dzdb`,
    computed as w * (1 - rate * shrinkRate) - (rate / n) * dzdw, the same sum in 3 fused calls."""
    weights, biases = [getattr(p, k) for k in WEIGHTS], [getattr(p, k) for k in BIASES]
    torch._foreach_mul_(weights, 1 - lr * shrink_rate)
    torch._foreach_add_(weights, [getattr(grads, k) for k in WEIGHTS], alpha=-lr / n)
    torch._foreach_add_(biases, [getattr(grads, k) for k in BIASES], alpha=-lr * bias_step_scale / n)


class AdamStep:
    """Adam (torch.optim.Adam, its defaults: betas 0.9/0.999, eps 1e-8) on the gradient the post's
    update steps by: `(1/n) * dzdw + shrinkRate * w` for the weights (the decay inside the gradient,
    as in the post's line), `0.1 * (1/n) * dzdb` for the biases, at the post's rate. Only the step
    rule changes: Adam divides each weight's step by its gradient's running scale."""

    def __init__(self, p: Params, lr: float):
        self.tensors = [getattr(p, k) for k in WEIGHTS + BIASES]
        self.adam = torch.optim.Adam(self.tensors, lr=lr)

    def __call__(self, p: Params, grads: Params, n: int, lr: float, shrink_rate: float, bias_step_scale: float):
        for k, t in zip(WEIGHTS + BIASES, self.tensors):
            g = getattr(grads, k).detach() / n
            t.grad = g + shrink_rate * t.detach() if k in WEIGHTS else bias_step_scale * g
        self.adam.step()


def weight_norms(p: Params) -> dict[str, float]:
    return {f"norm_{name}": float(getattr(p, name).norm()) for name in WEIGHTS}
