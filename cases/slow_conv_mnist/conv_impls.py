"""The post's convolution layer three ways: the same arithmetic, only the speed differs.

A 'valid', stride-1 convolution (cross-correlation, as in LeCun 1998 and tiny-dnn) with one bias
per filter. Each implementation gives the forward output and, from the output gradient `d`, the
gradients of the weights, the biases and the input. tests/test_slow_conv_mnist.py checks the three
against each other and against torch autograd, so the slowness is the implementation alone.

- `loops`: the post's "6-for translation of the derivatives formula", in pure Python over numpy
  arrays (one scalar multiply-add per iteration). Only timed on a few images: ~1 s per image.
- `im2col_np`: numpy stride tricks: every 5x5 window becomes a column, the convolution one matmul.
- `im2col_torch`: the same in torch; the learning runs use it (model.Conv).
Shapes: x (C, H, W), w (F, C, K, K), b (F,), out and d (F, H-K+1, W-K+1); torch versions take a
leading batch dimension.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def loops_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    n_f, n_c, k, _ = w.shape
    out_h, out_w = x.shape[1] - k + 1, x.shape[2] - k + 1
    out = np.zeros((n_f, out_h, out_w))
    for f in range(n_f):
        for i in range(out_h):
            for j in range(out_w):
                total = b[f]
                for c in range(n_c):
                    for p in range(k):
                        for q in range(k):
                            total += w[f, c, p, q] * x[c, i + p, j + q]
                out[f, i, j] = total
    return out


def loops_backward(x: np.ndarray, w: np.ndarray, d: np.ndarray):
    """(dw, db, dx) by the same six loops: each output gradient flows to the weight and the input
    pixel it multiplied."""
    n_f, n_c, k, _ = w.shape
    dw, db, dx = np.zeros_like(w), np.zeros(n_f), np.zeros_like(x)
    for f in range(n_f):
        for i in range(d.shape[1]):
            for j in range(d.shape[2]):
                g = d[f, i, j]
                db[f] += g
                for c in range(n_c):
                    for p in range(k):
                        for q in range(k):
                            dw[f, c, p, q] += g * x[c, i + p, j + q]
                            dx[c, i + p, j + q] += g * w[f, c, p, q]
    return dw, db, dx


def _windows_np(x: np.ndarray, k: int) -> np.ndarray:
    """(C, H, W) -> (C*K*K, L) columns, one per output position, without copying until reshape."""
    c = x.shape[0]
    view = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(1, 2))  # C, H', W', K, K
    return view.transpose(0, 3, 4, 1, 2).reshape(c * k * k, -1)


def im2col_np_forward(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    n_f, _, k, _ = w.shape
    out = w.reshape(n_f, -1) @ _windows_np(x, k) + b[:, None]
    return out.reshape(n_f, x.shape[1] - k + 1, x.shape[2] - k + 1)


def im2col_np_backward(x: np.ndarray, w: np.ndarray, d: np.ndarray):
    n_f, n_c, k, _ = w.shape
    d2 = d.reshape(n_f, -1)
    dw = (d2 @ _windows_np(x, k).T).reshape(w.shape)
    # The input gradient is a 'full' correlation of d with the filters turned 180 degrees.
    padded = np.pad(d, ((0, 0), (k - 1, k - 1), (k - 1, k - 1)))
    turned = w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3).reshape(n_c, -1)
    dx = (turned @ _windows_np(padded, k)).reshape(x.shape)
    return dw, d2.sum(1), dx


def windows(x: torch.Tensor, k: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, C*K*K, L). Tensor.unfold views, then one copy: on one image this is ~3x
    faster than F.unfold and ~10x faster than F.fold (torch 2.13, CPU, measured)."""
    b, c = x.shape[:2]
    return x.unfold(2, k, 1).unfold(3, k, 1).permute(0, 1, 4, 5, 2, 3).reshape(b, c * k * k, -1)


def im2col_torch_forward(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor):
    """Returns the output and the columns, which the backward pass reuses."""
    n, n_f, k = x.shape[0], w.shape[0], w.shape[-1]
    cols = windows(x, k)
    w2 = w.reshape(n_f, -1)
    # One image: a plain 2-D matmul, ~2x faster than the batched form at this size (measured).
    out = torch.addmm(b[:, None], w2, cols[0])[None] if n == 1 else torch.matmul(w2, cols) + b[:, None]
    return out.view(n, n_f, x.shape[2] - k + 1, x.shape[3] - k + 1), cols


def im2col_torch_backward(cols: torch.Tensor, w: torch.Tensor, d: torch.Tensor, need_input: bool = True):
    """(dw, db, dx) summed over the batch; dx is None when the input needs no gradient (the
    network's first layer)."""
    n, n_f, n_c, k = d.shape[0], w.shape[0], w.shape[1], w.shape[-1]
    d2 = d.reshape(n, n_f, -1)
    if n == 1:
        dw = (d2[0] @ cols[0].t()).view(w.shape)
    else:
        dw = torch.matmul(d2, cols.transpose(1, 2)).sum(0).view(w.shape)
    dx = None
    if need_input:
        # The input gradient is a 'full' correlation of d with the filters turned 180 degrees.
        turned = w.flip(2, 3).transpose(0, 1).reshape(n_c, -1)
        cols_d = windows(F.pad(d, (k - 1,) * 4), k)
        dx = turned @ cols_d[0] if n == 1 else torch.matmul(turned, cols_d)
        dx = dx.view(n, n_c, d.shape[2] + k - 1, d.shape[3] + k - 1)
    return dw, d2.sum((0, 2)), dx
