"""relu_blowup: the hand-written backward against autograd, and the case's expectations."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from failbench.cases.relu_blowup.model import Params, clip, draw_shapes, forward, gradients, init_params, standardised


def _params(seed=0, size=8):
    g = torch.Generator().manual_seed(seed)
    return Params(
        torch.randn(1, 3, 3, 3, generator=g, dtype=torch.float64),
        torch.randn(size * size, generator=g, dtype=torch.float64) * 0.1,
        torch.tensor(0.3, dtype=torch.float64),
    )


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
@pytest.mark.parametrize("label", [0.0, 1.0])
def test_chain_rule_backward_matches_autograd(activation, label):
    p = _params()
    image = torch.rand(3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    *ours, _ = gradients(p, image, label, activation, backward="chain_rule", bias_step="gradient")
    leaves = [t.clone().requires_grad_() for t in (p.filter, p.weights, p.bias)]
    _, _, logit = forward(Params(*leaves), image, activation)
    F.binary_cross_entropy_with_logits(logit, torch.tensor(label, dtype=torch.float64)).backward()
    for mine, leaf in zip(ours, leaves):
        torch.testing.assert_close(mine, leaf.grad)


def test_post_backward_hands_back_the_weight_gradient_and_averages_it_for_the_bias():
    p = _params()
    image = torch.rand(3, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    conv, mapped, logit = forward(p, image, "relu")
    h = torch.sigmoid(logit) - 0.0
    grad_filter, grad_weights, grad_bias, _ = gradients(p, image, 0.0, "relu", "post", "mean_weight_gradient")
    torch.testing.assert_close(grad_weights, h * mapped.flatten())  # `error = h*x[i-1]`
    torch.testing.assert_close(grad_bias, grad_weights.mean())  # `m_pWeights[0] -= lr*average`
    # the conv layer receives h*x where the chain rule would give h*w
    expected = torch.nn.grad.conv2d_weight(image[None], p.filter.shape, (h * mapped) * (conv > 0), padding=1)
    torch.testing.assert_close(grad_filter, expected)


def test_clip_matches_torch_clip_grad_norm():
    grads = (torch.randn(1, 3, 3, 3) * 50, torch.randn(64) * 50, torch.tensor(40.0))
    params = [torch.zeros_like(g, requires_grad=True) for g in grads]
    for param, g in zip(params, grads):
        param.grad = g.clone()
    torch.nn.utils.clip_grad_norm_(params, max_norm=1.0)
    for mine, param in zip(clip(grads, 1.0), params):
        torch.testing.assert_close(mine, param.grad)


def test_shapes_light_the_same_number_of_pixels():
    cross, circle = draw_shapes(32, 255.0)
    assert cross.shape == (3, 32, 32) and cross.max() == 255.0
    assert int((cross > 0).sum()) == int((circle > 0).sum())
    assert not torch.equal(cross, circle)


def test_standardised_inputs_have_zero_mean_and_unit_variance_per_channel():
    images = torch.stack(standardised(draw_shapes(32, 255.0)))
    torch.testing.assert_close(images.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(images.std(dim=(0, 2, 3)), torch.ones(3))


def test_torch_default_init_is_zero_centred_at_pytorchs_bounds():
    torch.manual_seed(0)
    p = init_params(32, "torch_default", torch.device("cpu"))
    assert p.filter.abs().max() <= 27**-0.5 and p.weights.abs().max() <= 1 / 32 and abs(float(p.bias)) <= 1 / 32
    assert (p.filter < 0).any() and (p.weights < 0).any()  # U(0, 1) never is


@pytest.mark.slow
@pytest.mark.grid
def test_quick_profile_expectations_hold(quick_expectations):
    table = quick_expectations("relu_blowup")
    assert (table["seeds"] >= 10).all()
