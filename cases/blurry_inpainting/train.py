"""The training loop: the post's reconstruction loss, plus Context Encoders' adversarial term when
asked for, and the final measurements of the fill (eval mode, train mode, recalibrated batch norm)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from failbench.cases.blurry_inpainting.data import load
from failbench.cases.blurry_inpainting.metrics import (
    blur_effect,
    blurred,
    centre_mask,
    hole_hwc,
    hole_metrics,
    hole_slice,
    sharpness_ratio,
    whole_hwc,
)
from failbench.cases.blurry_inpainting.model import Discriminator, Inpainter, inference_gap, recalibrated

PICTURED = (0, 4, 7, 17, 21, 27)  # held-out patches shown in the report: 3 of the cat, 3 of the flower
BLUR_SIGMA = 1.5  # px: skimage's anti-aliasing sigma (s-1)/2 for the bottleneck's s=4 down-sampling


def reconstruction(out, x, mask, loss: str, region: str) -> torch.Tensor:
    if loss == "bce":  # the post: "Loss: binary crossentropy" (Keras' mean over pixels)
        per_pixel = F.binary_cross_entropy(out, x, reduction="none")
    elif loss == "l1":
        per_pixel = (out - x).abs()
    else:
        raise ValueError(f"unknown loss {loss!r}")
    if region == "image":  # the post: "Target: Full image"
        return per_pixel.mean()
    if region == "hole":
        return (per_pixel * mask).sum() / (mask.sum() * x.shape[0] * x.shape[1])
    raise ValueError(f"unknown loss region {region!r}")


def masked(x, mask, hole_value: float):
    return x * (1 - mask) + hole_value * mask


def composite(out, x, mask):
    """The truth's border around the network's hole: what an inpainting shows."""
    return x * (1 - mask) + out * mask


def strip(images: torch.Tensor) -> np.ndarray:
    """Patches side by side with a 2 px white gap, H x W x 3 in [0, 1], for run.image."""
    gap = torch.ones(3, images.shape[2], 2, device=images.device)
    parts = [p for im in images for p in (im, gap)][:-1]
    return torch.cat(parts, 2).permute(1, 2, 0).detach().cpu().numpy()


def fit(cfg, run) -> dict[str, float]:
    data = load(cfg.patch_size, cfg.image_dir, cfg.held_out_images)
    device = run.device
    held = data.held_out.to(device)
    mask = centre_mask(cfg.patch_size, device)
    model = Inpainter(cfg.filters, cfg.depth, cfg.norm, cfg.dropout, cfg.skips, cfg.dilation, cfg.spatial_dropout).to(
        device
    )
    model = model.to(memory_format=torch.channels_last)  # measured: ~30% less CPU time per step
    run.trace.watch(model)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)  # Keras' Adam defaults: lr 1e-3
    h = hole_slice(cfg.patch_size)
    if cfg.adv_weight > 0:
        disc = Discriminator(cfg.patch_size // 2, cfg.filters).to(device)
        # Context Encoders' (and DCGAN's) adversary optimiser: Adam, lr 2e-4, beta1 0.5
        opt_d = torch.optim.Adam(disc.parameters(), lr=2e-4, betas=(0.5, 0.999))
    every = run.log_every(cfg.steps)
    for step in range(1, cfg.steps + 1):
        x = data.batch(cfg.batch_size, device)
        out = model(masked(x, mask, cfg.hole_value))
        rec = reconstruction(out, x, mask, cfg.loss, cfg.loss_region)
        logged = {"rec_loss": rec}
        loss = rec
        if cfg.adv_weight > 0:
            fake, real = out[..., h, h], x[..., h, h]
            ones, zeros = torch.ones(len(x), device=device), torch.zeros(len(x), device=device)
            d_loss = F.binary_cross_entropy_with_logits(disc(real), ones) + F.binary_cross_entropy_with_logits(
                disc(fake.detach()), zeros
            )
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            adv = F.binary_cross_entropy_with_logits(disc(fake), ones)  # non-saturating G loss
            # Context Encoders: lambda_rec = 0.999, lambda_adv = 0.001
            loss = (1 - cfg.adv_weight) * rec + cfg.adv_weight * adv
            logged.update(d_loss=d_loss, adv_loss=adv)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % every == 0 or step == 1:
            values = {
                "loss": float(loss.detach()),
                **{k: float(v.detach()) for k, v in logged.items()},
                "train_hole_bias": float((out.detach() - x)[..., h, h].mean()),
            }
            if (step % (10 * every) == 0 or step == 1) and step < cfg.steps:  # the last one: finish()
                values.update(held_out_curve(model, held, mask, cfg.hole_value))
            run.log(step, **values)
    metrics = finish(model, data, held, mask, cfg, run)
    run.log(cfg.steps, **metrics)  # the final held-out point of the curves, and what the report plots
    return metrics


def held_out_curve(model, held, mask, hole_value) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        out = model(masked(held, mask, hole_value))
    model.train()
    f, t = hole_hwc(out), hole_hwc(held)
    return {
        "psnr_db": 10 * np.log10(1 / np.mean((f - t) ** 2)),  # = skimage's PSNR, data_range 1
        "sharpness_ratio": sharpness_ratio(f, t),
        "brightness_bias": float(f.mean() - t.mean()),
    }


def finish(model, data, held, mask, cfg, run) -> dict[str, float]:
    inp = masked(held, mask, cfg.hole_value)
    h = hole_slice(cfg.patch_size)
    model.eval()
    with torch.no_grad():
        out = model(inp)
    metrics = hole_metrics(out, held)
    # The same ratio over the whole output image, border included (not judged): a measure that sees
    # the border rewards a network that copies it sharply (U-Net skips) whatever it does in the hole.
    metrics["image_sharpness_ratio"] = sharpness_ratio(whole_hwc(out), whole_hwc(held))
    metrics["blurred_truth_sharpness_ratio"] = sharpness_ratio(hole_hwc(blurred(held, BLUR_SIGMA)), hole_hwc(held))
    metrics["truth_blur_effect"] = blur_effect(hole_hwc(held))
    # The darkening, taken apart: the same weights in inference mode (dropout off, batch norm on its
    # running statistics) and in training mode (8 passes averaged; batch norm on the held-out batch).
    t = float(hole_hwc(held).mean())
    gap = inference_gap(model, inp, h, passes=8)
    metrics["brightness_bias_train_mode"] = float(gap["train"].mean()) - t
    metrics["brightness_bias_train_mean_logit"] = float(gap["train_mean_logit"].mean()) - t  # no sigmoid curvature
    metrics["logit_shift"] = float((gap["logit_eval"] - gap["logit_train"]).mean())
    live = gap["relu_train"][1:].sum()  # ReLUs from the 2nd on: the 1st has no dropout before it
    if live > 0:  # a collapsed network (every ReLU zero) has no ratio to give
        metrics["relu_eval_over_train"] = float(gap["relu_eval"][1:].sum() / live)
    reference = metrics["brightness_bias_train_mode"]
    if cfg.norm == "batch":  # running statistics recomputed exactly on 20 training batches
        batches = [masked(data.batch(cfg.batch_size, held.device), mask, cfg.hole_value) for _ in range(20)]
        with torch.no_grad():
            fixed = recalibrated(model, batches)(inp)
        reference = metrics["brightness_bias_recalibrated"] = float(fixed[..., h, h].mean()) - t
    # How much darker inference mode makes the fill than the same weights under training conditions
    # (dropout masks averaged; batch norm on exact training statistics): 0 without dropout or BN.
    # Rounded to 1e-6 (1/4000 of a grey level): 8 averaged passes of identical outputs are not bit-equal to one.
    metrics["inference_shift"] = round(metrics["brightness_bias"] - reference, 6) + 0.0
    # The shift as a Weber contrast (against the truth's mean brightness in the hole): the eye sees a
    # uniform darkening from a contrast of ~1-2% (Weber's fraction for luminance), not an absolute one.
    metrics["inference_contrast"] = round(metrics["inference_shift"] / t, 6) + 0.0
    picked = list(PICTURED) if len(held) > max(PICTURED) else list(range(min(6, len(held))))
    run.image("masked_input", strip(inp[picked]))
    run.image("fill", strip(composite(out, held, mask)[picked]))
    run.image("truth", strip(held[picked]))
    return metrics
