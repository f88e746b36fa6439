"""Metrics of the fill inside the hole, from scikit-image where it has one.

All take N x H x W x 3 float arrays in [0, 1]: the hole of the fill and the hole of the truth.
- PSNR: skimage.metrics.peak_signal_noise_ratio over all holes at once (one pooled MSE).
- SSIM: skimage.metrics.structural_similarity per hole, averaged, with every parameter pinned.
- sharpness ratio: mean Sobel gradient magnitude (skimage.filters.sobel on the grey hole) of the
  fill over that of the truth, pooled over the holes; 1 = as much edge as the truth, 0 = flat.
- blur: skimage.measure.blur_effect (Crete-Roffet et al. 2007), 0 sharp .. 1 blurred, averaged.
- brightness bias: mean of the fill minus mean of the truth, over pixels and RGB channels, in [0, 1]
  units (x255 gives 8-bit levels).
"""

from __future__ import annotations

import numpy as np
import torch

# Pinned SSIM parameters: Wang et al. 2004's K1, K2 with a 7x7 uniform window (skimage's default
# window, which also fits the quick profile's 16x16 hole); pinned so a library upgrade cannot move them.
SSIM = dict(
    data_range=1.0, channel_axis=-1, win_size=7, gaussian_weights=False, K1=0.01, K2=0.03, use_sample_covariance=True
)


def hole_slice(size: int) -> slice:
    """The missing centre: size/2 x size/2 in the middle (the post: 32x32 of 64x64)."""
    return slice(size // 4, size // 4 + size // 2)


def centre_mask(size: int, device=None) -> torch.Tensor:
    mask = torch.zeros(1, 1, size, size, device=device)
    mask[..., hole_slice(size), hole_slice(size)] = 1.0
    return mask


def hole_hwc(images: torch.Tensor) -> np.ndarray:
    """N x 3 x S x S tensor -> its holes as an N x S/2 x S/2 x 3 float64 array."""
    h = hole_slice(images.shape[-1])
    return images[..., h, h].detach().cpu().double().permute(0, 2, 3, 1).numpy()


def whole_hwc(images: torch.Tensor) -> np.ndarray:
    """N x 3 x S x S tensor -> N x S x S x 3 float64 array (the whole image, border included)."""
    return images.detach().cpu().double().permute(0, 2, 3, 1).numpy()


def grey(holes: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2gray

    return rgb2gray(holes)  # ITU-R 601 luma weights, as skimage defines them


def gradient_magnitude(holes: np.ndarray) -> np.ndarray:
    from skimage.filters import sobel

    return np.stack([sobel(g) for g in grey(holes)])


def sharpness_ratio(fill: np.ndarray, truth: np.ndarray) -> float:
    return float(gradient_magnitude(fill).sum() / gradient_magnitude(truth).sum())


def psnr_db(fill: np.ndarray, truth: np.ndarray) -> float:
    from skimage.metrics import peak_signal_noise_ratio

    return float(peak_signal_noise_ratio(truth, fill, data_range=1.0))


def ssim(fill: np.ndarray, truth: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(np.mean([structural_similarity(t, f, **SSIM) for f, t in zip(fill, truth)]))


def blur_effect(holes: np.ndarray) -> float:
    from skimage.measure import blur_effect as crete_roffet

    return float(np.mean([crete_roffet(g) for g in grey(holes)]))


def brightness_bias(fill: np.ndarray, truth: np.ndarray) -> float:
    return float(fill.mean() - truth.mean())


def blurred(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """The truth through a Gaussian blur of `sigma` pixels, the whole patch blurred, then cropped by
    the caller, so the hole's edges see real neighbours rather than a padding rule."""
    from skimage.filters import gaussian

    arrays = images.detach().cpu().double().permute(0, 2, 3, 1).numpy()
    out = np.stack([gaussian(a, sigma=sigma, channel_axis=-1, preserve_range=True) for a in arrays])
    return torch.from_numpy(out).permute(0, 3, 1, 2).to(images)


def hole_metrics(fill: torch.Tensor, truth: torch.Tensor) -> dict[str, float]:
    f, t = hole_hwc(fill), hole_hwc(truth)
    return {
        "psnr_db": psnr_db(f, t),
        "ssim": ssim(f, t),
        "sharpness_ratio": sharpness_ratio(f, t),
        "blur_effect": blur_effect(f),
        "brightness_bias": brightness_bias(f, t),
    }
