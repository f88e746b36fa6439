"""The post's conv layer (1x32x32 in, 5 filters 5x5), forward + backward on one image: its six
Python loops, im2col in numpy, im2col in torch (what the learning runs use), and torch's own
conv2d with autograd; on CUDA too when torch sees one.

Run with `make bench` (pytest-benchmark; disabled in the normal test run, where each call runs
once). After the group, the extrapolation to the post's 2 epochs x 60,000 images is printed next to
its 14 hours (the same table as `python -m cases.slow_conv_mnist.speed`). Numbers, never asserted.
"""

from __future__ import annotations

import pytest
import torch

from failbench.cases.slow_conv_mnist.speed import extrapolate, format_table, steps

GROUP = "slow_conv_mnist: post's conv layer, fwd+bwd, one image"
CPU = steps("cpu")
CUDA = steps("cuda") if torch.cuda.is_available() else {}
MEDIANS: dict[str, float] = {}


@pytest.fixture(scope="module", autouse=True)
def speed_table(request):
    yield
    if "loops" in MEDIANS and "torch_im2col" in MEDIANS:  # only when the benchmarks really ran
        plugins = request.config.pluginmanager
        with plugins.get_plugin("capturemanager").global_and_fixture_disabled():
            plugins.get_plugin("terminalreporter").write_line("\n" + format_table(extrapolate(MEDIANS)))


def _keep(benchmark, name):
    if benchmark.stats is not None:  # None under --benchmark-disable
        MEDIANS[name] = benchmark.stats.stats.median


def test_loops(benchmark):
    """~0.3-1 s a call: 3 rounds are enough to see the scale, and keep `make bench` short."""
    torch.set_num_threads(1)
    benchmark.group = GROUP
    benchmark.pedantic(CPU["loops"], rounds=3, iterations=1, warmup_rounds=0)
    _keep(benchmark, "loops")


@pytest.mark.parametrize("name", ["im2col_numpy", "torch_im2col", "torch_conv2d_autograd"])
def test_vectorised(benchmark, name):
    torch.set_num_threads(1)  # the harness's default, one thread per grid point
    benchmark.group = GROUP
    benchmark(CPU[name])
    _keep(benchmark, name)


@pytest.mark.skipif(not CUDA, reason="torch sees no CUDA device")
@pytest.mark.parametrize("name", ["torch_im2col", "torch_conv2d_autograd"])
def test_cuda(benchmark, name):
    benchmark.group = GROUP
    benchmark(CUDA[name])
    _keep(benchmark, f"{name}_cuda")
