"""The speed half of the post: seconds per image of its conv layer, three ways, extrapolated to its
2 epochs of 60,000 images next to its 14 hours.

    python -m cases.slow_conv_mnist.speed        # prints the table (~10 s on a CPU)

The layer is the post's first one: 1x32x32 in, 5 filters 5x5, forward and backward (weights, bias
and input gradients) on one image, the unit of its training loop. The loops are timed on 3 images
only. tests/benchmarks/test_conv_speed.py times the same calls under pytest-benchmark.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from failbench.cases.slow_conv_mnist import conv_impls as ci

POST_IMAGES = 2 * 60_000  # the post: "The training was done in 2 epochs" of MNIST's 60,000
POST_HOURS = 14.0  # the post: "The training took about 14 hours" (the whole conv net)


def post_layer(seed: int = 0):
    """One padded digit-sized input, 5 filters 5x5, and an output gradient, as float64 numpy (the
    post's numpy default)."""
    rng = np.random.default_rng(seed)
    x, w, b = rng.random((1, 32, 32)), rng.normal(0, 0.1, (5, 1, 5, 5)), rng.normal(0, 0.1, 5)
    return x, w, b, rng.normal(0, 1, (5, 28, 28))


def steps(device: str = "cpu") -> dict[str, Callable[[], object]]:
    """name -> a call that runs forward + backward of the post's layer on one image."""
    x, w, b, d = post_layer()
    tx, tw, tb, td = (torch.tensor(a, dtype=torch.float32, device=device) for a in (x, w, b, d))
    leaves = [t.clone().requires_grad_() for t in (tx, tw, tb)]

    def torch_im2col():
        _, cols = ci.im2col_torch_forward(tx[None], tw, tb)
        return ci.im2col_torch_backward(cols, tw, td[None])

    def torch_autograd():
        out = F.conv2d(leaves[0][None], leaves[1], leaves[2])
        return torch.autograd.grad(out, leaves, td[None])

    def synced(fn):  # a CUDA kernel only counts once it has finished
        return (lambda: (fn(), torch.cuda.synchronize())) if device == "cuda" else fn

    calls = {"torch_im2col": synced(torch_im2col), "torch_conv2d_autograd": synced(torch_autograd)}
    if device == "cpu":
        calls = {
            "loops": lambda: (ci.loops_forward(x, w, b), ci.loops_backward(x, w, d)),
            "im2col_numpy": lambda: (ci.im2col_np_forward(x, w, b), ci.im2col_np_backward(x, w, d)),
            **calls,
        }
    return calls


def seconds_per_call(fn: Callable[[], object], budget_s: float = 1.0, most: int = 2000) -> float:
    """Median of repeated calls after one warm-up, at most `most` calls or ~budget_s seconds."""
    fn()
    times: list[float] = []
    while len(times) < most and (not times or sum(times) < budget_s):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def extrapolate(seconds: dict[str, float], reference: str = "torch_im2col") -> dict[str, dict[str, float]]:
    return {
        name: {
            "seconds_per_image": s,
            "two_epochs_hours": s * POST_IMAGES / 3600,
            "x_reference": s / seconds[reference],
        }
        for name, s in seconds.items()
    }


def format_table(rows: dict[str, dict[str, float]], reference: str = "torch_im2col") -> str:
    lines = ["| implementation | s per image (fwd+bwd) | 2 epochs x 60,000 images | x torch |", "|---|---|---|---|"]
    for name, row in rows.items():
        hours = row["two_epochs_hours"]
        span = (
            f"{hours:.1f} h" if hours >= 1 else f"{hours * 60:.1f} min" if hours * 60 >= 1 else f"{hours * 3600:.0f} s"
        )
        lines.append(f"| {name} | {row['seconds_per_image']:.3g} | {span} | {row['x_reference']:,.0f} |")
    lines.append(
        f"| the post (whole conv net, its implementation) | {POST_HOURS * 3600 / POST_IMAGES:.2g} "
        f"| {POST_HOURS:.0f} h | |"
    )
    if "loops" in rows:
        lines.append(f"\nloops / torch = {rows['loops']['x_reference']:,.0f}x")
    return "\n".join(lines)


def measure(loop_images: int = 3) -> dict[str, float]:
    seconds = {}
    for name, fn in steps("cpu").items():
        seconds[name] = (
            seconds_per_call(fn, budget_s=float("inf"), most=loop_images) if name == "loops" else seconds_per_call(fn)
        )
    if torch.cuda.is_available():
        for name, fn in steps("cuda").items():
            seconds[f"{name}_cuda"] = seconds_per_call(fn)
    return seconds


def main() -> None:
    torch.set_num_threads(1)  # the harness's default: one thread per grid point
    print(format_table(extrapolate(measure())))


if __name__ == "__main__":
    main()
