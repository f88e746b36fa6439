"""constant_output: the port of the post's backward against its MATLAB formulas, the autograd path
against finite differences, the update rule, the data, and the case's expectations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from failbench.cases.constant_output.data import _images, load, mapminmax_rows
from failbench.cases.constant_output.model import (
    AdamStep,
    Params,
    autograd_backward,
    forward,
    init_params,
    patches,
    post_backward,
    step,
    summed_loss,
)

N = 5  # samples in the gradient tests: enough to sum over, small enough for gradcheck


def _params(seed=0) -> Params:
    """Weights large enough that the sigmoid is off its linear part and x2 leaves [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s, scale=1.0: torch.randn(*s, generator=g, dtype=torch.float64) * scale  # noqa: E731
    return Params(
        r(1, 1, 3, 3, scale=0.5),
        r(1, scale=0.3),
        r(4, 400, scale=0.05),
        r(4, scale=0.3),
        r(4, 4, scale=0.5),
        r(4, scale=0.3),
    )


def _batch(seed=1):
    g = torch.Generator().manual_seed(seed)
    return (
        torch.rand(N, 1, 20, 20, generator=g, dtype=torch.float64),
        torch.rand(N, 4, generator=g, dtype=torch.float64),
    )


def _matlab_backward(x, w, b, theta1, beta1, theta2, beta2, y):
    """filtercnnDQN.m transcribed loop for loop (column vectors, sums over i), vl_nnconv as conv2d."""
    x2 = F.conv2d(x, w, b, padding=1)
    x4 = [torch.sigmoid(theta1 @ x2[i].reshape(400, 1) + beta1.view(4, 1)) for i in range(len(x))]
    x5 = [theta2 @ x4[i] + beta2.view(4, 1) for i in range(len(x))]
    dzdtheta2 = dzdbeta2 = dzdtheta1 = dzdbeta1 = 0
    dzdx2 = torch.zeros_like(x2)
    for i in range(len(x)):
        dzdx5 = x5[i] - y[i].view(4, 1)
        dzdx4 = theta2.T @ dzdx5
        dzdtheta2 = dzdtheta2 + dzdx5 @ x4[i].T
        dzdbeta2 = dzdbeta2 + dzdx5
        v = x2[i].reshape(400, 1)
        dzdx2[i] = ((theta1.T @ dzdx4) * v * (torch.ones(400, 1, dtype=v.dtype) - v)).reshape(1, 20, 20)
        dzdtheta1 = dzdtheta1 + dzdx4 @ v.T
        dzdbeta1 = dzdbeta1 + dzdx4
    dzdw = torch.nn.grad.conv2d_weight(x, w.shape, dzdx2, padding=1)
    return dzdw, dzdx2.sum().view(1), dzdtheta1, dzdbeta1.view(4), dzdtheta2, dzdbeta2.view(4)


def test_patches_reproduce_conv2d_and_its_weight_gradient():
    p, (x, _) = _params(), _batch()
    x2 = forward(p, patches(x))[0]
    torch.testing.assert_close(x2, F.conv2d(x, p.w, p.b, padding=1).flatten(1))
    g = torch.randn(N, 400, dtype=torch.float64)
    torch.testing.assert_close(
        (patches(x) @ g.view(-1)).view(1, 1, 3, 3),
        torch.nn.grad.conv2d_weight(x, p.w.shape, g.view(N, 1, 20, 20), padding=1),
    )


def test_post_backward_is_the_posts_code():
    p, (x, y) = _params(), _batch()
    ours, _ = post_backward(p, patches(x), y)
    for mine, theirs in zip(ours.tensors(), _matlab_backward(x, *p.tensors(), y)):
        torch.testing.assert_close(mine, theirs)


def test_autograd_path_passes_gradcheck():
    p, (x, y) = _params(), _batch()
    cols = patches(x)
    leaves = [t.clone().requires_grad_() for t in p.tensors()]
    # fast mode checks random projections of the Jacobian (2 evaluations, not 2 per each of 1,646
    # parameters); the next test compares every entry with the chain rule's formulas
    assert torch.autograd.gradcheck(lambda *t: summed_loss(Params(*t), cols, y)[0], leaves, fast_mode=True)


def test_where_the_post_backward_differs_from_the_chain_rule():
    """Same theta2/beta2 gradients; the sigmoid's derivative s(1-s) belongs on the 4 hidden units,
    where the post leaves it out of dzdtheta1/dzdbeta1 and puts x2(1-x2) on the 400 conv outputs."""
    p, (x, y) = _params(), _batch()
    cols = patches(x)
    post, _ = post_backward(p, cols, y)
    auto, _ = autograd_backward(p, cols, y)
    torch.testing.assert_close(post.theta2, auto.theta2)
    torch.testing.assert_close(post.beta2, auto.beta2)
    x2, x4, x5 = forward(p, cols)
    dzdx4 = (x5 - y) @ p.theta2
    delta = dzdx4 * x4 * (1 - x4)  # dLoss / d(theta1 x2 + beta1)
    torch.testing.assert_close(auto.theta1, delta.T @ x2)
    torch.testing.assert_close(auto.beta1, delta.sum(0))
    torch.testing.assert_close(auto.w, (cols @ (delta @ p.theta1).view(-1)).view(1, 1, 3, 3))
    torch.testing.assert_close(post.theta1, dzdx4.T @ x2)
    for name in ("w", "b", "theta1", "beta1"):
        assert not torch.allclose(getattr(post, name), getattr(auto, name)), name


def test_update_is_the_posts_rule():
    p, grads = _params(), _params(seed=3)
    before = [t.clone() for t in p.tensors()]
    step(p, grads, n=32, lr=0.003, shrink_rate=500.0, bias_step_scale=0.1)
    for name, old, new, g in zip(
        ("w", "b", "theta1", "beta1", "theta2", "beta2"), before, p.tensors(), grads.tensors()
    ):
        if name in ("w", "theta1", "theta2"):  # `w - rate * ((1/n) * dzdw + shrinkRate * w)`
            expected = old - 0.003 * ((1 / 32) * g + 500.0 * old)
        else:  # `b - rate * 0.1 * (1/n) * dzdb`
            expected = old - 0.003 * 0.1 * (1 / 32) * g
        torch.testing.assert_close(new, expected)
    zero = Params(*[torch.zeros_like(t) for t in p.tensors()])
    w = p.w.clone()
    step(p, zero, n=32, lr=0.003, shrink_rate=500.0, bias_step_scale=0.1)
    torch.testing.assert_close(p.w, -0.5 * w)  # 1 - 0.003 * 500: every weight halves and flips


def test_adam_steps_on_the_posts_gradient():
    """The adam fix changes only the step rule: torch's Adam fed the gradient the post steps by
    (the decay inside it for the weights, 0.1/n for the biases)."""
    p, grads = _params(), _params(seed=3)
    reference = [t.clone().requires_grad_() for t in p.tensors()]
    names = ("w", "b", "theta1", "beta1", "theta2", "beta2")
    adam = torch.optim.Adam(reference, lr=0.003)
    update = AdamStep(p, lr=0.003)
    for _ in range(3):
        for name, t, g in zip(names, reference, grads.tensors()):
            t.grad = g / 32 + 500.0 * t.detach() if name in ("w", "theta1", "theta2") else 0.1 * g / 32
        adam.step()
        update(p, grads, n=32, lr=0.003, shrink_rate=500.0, bias_step_scale=0.1)
    for name, mine, theirs in zip(names, p.tensors(), reference):
        torch.testing.assert_close(mine, theirs.detach(), msg=name)


def test_initial_ranges_are_the_posts():
    torch.manual_seed(0)
    p = init_params("post", torch.device("cpu"))
    assert p.theta1.abs().max() <= 1 / 400 and p.theta2.abs().max() <= 1 / 4
    assert abs(float(p.w.mean()) + 1 / 400) < 0.01 and float(p.w.std()) < 0.02
    assert all(float(t.abs().max()) == 0.0 for t in (p.b, p.beta1, p.beta2))


def test_mapminmax_scales_each_sample_over_its_pixels():
    rows = np.array([[2.0, 4.0, 6.0], [0.0, 10.0, 5.0]])
    np.testing.assert_allclose(mapminmax_rows(rows), [[0, 0.5, 1], [0, 1, 0.5]])
    images = _images(40)
    assert images.shape == (40, 400)
    np.testing.assert_allclose(images.min(1), 0.0)
    np.testing.assert_allclose(images.max(1), 1.0)


def test_learnable_targets_are_a_function_of_the_input_and_random_ones_are_not():
    """A least-squares line through the 32 training images predicts held-out quadrant ink (R^2 well
    above 0), and cannot predict held-out random targets (R^2 at or below 0)."""

    def heldout_r2(targets):
        torch.manual_seed(0)
        x, y, x_ho, y_ho = (t.double() for t in load(32, 256, targets, torch.device("cpu")))
        design = lambda a: torch.cat([a.flatten(1), torch.ones(len(a), 1, dtype=a.dtype)], 1)  # noqa: E731
        coef = torch.linalg.pinv(design(x)) @ y
        pred = design(x_ho) @ coef
        return float((1 - ((pred - y_ho) ** 2).sum(0) / ((y_ho - y_ho.mean(0)) ** 2).sum(0)).mean())

    assert heldout_r2("quadrant_ink") > 0.5
    assert heldout_r2("random") < 0.0


@pytest.mark.slow
@pytest.mark.grid
def test_quick_profile_expectations_hold(quick_expectations):
    table = quick_expectations("constant_output")
    assert (table["seeds"] >= 10).all()
