"""blurry_inpainting: the hole metrics against scikit-image and the blurred-truth reference, the data
split, the post's layer counts, and the case's quick expectations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from failbench.cases.blurry_inpainting import data, metrics
from failbench.cases.blurry_inpainting.case import SHARPNESS
from failbench.cases.blurry_inpainting.model import Inpainter, inference_gap, recalibrated
from failbench.cases.blurry_inpainting.train import reconstruction
from failbench.discovery import load_case


@pytest.fixture(scope="module", params=[32, 64])
def held(request):
    return data.load(request.param).held_out


def test_psnr_and_ssim_are_skimage_with_pinned_parameters():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    rng = np.random.default_rng(0)
    truth = rng.random((4, 16, 16, 3))
    fill = np.clip(truth + rng.normal(0, 0.1, truth.shape), 0, 1)
    mse = np.mean((fill - truth) ** 2)
    assert metrics.psnr_db(fill, truth) == pytest.approx(10 * np.log10(1 / mse))
    assert metrics.psnr_db(fill, truth) == pytest.approx(peak_signal_noise_ratio(truth, fill, data_range=1.0))
    expected = np.mean(
        [structural_similarity(t, f, data_range=1.0, channel_axis=-1, win_size=7) for f, t in zip(fill, truth)]
    )
    assert metrics.ssim(fill, truth) == pytest.approx(expected)
    assert metrics.ssim(truth, truth) == pytest.approx(1.0)


def test_sharpness_ratio_of_the_truth_is_one_and_of_a_flat_fill_zero(held):
    truth = metrics.hole_hwc(held)
    assert metrics.sharpness_ratio(truth, truth) == pytest.approx(1.0)
    flat = np.broadcast_to(truth.mean(axis=(1, 2), keepdims=True), truth.shape)
    assert metrics.sharpness_ratio(flat, truth) == pytest.approx(0.0, abs=1e-9)


def test_threshold_is_the_truth_blurred_by_sigma_1_5(held):
    """The symptom's 0.58 is what the held-out truth scores through a Gaussian of sigma 1.5 px, at
    the quick (32) and full (64) patch sizes; more blur falls below it, less blur stays above."""
    truth = metrics.hole_hwc(held)
    ratio = {s: metrics.sharpness_ratio(metrics.hole_hwc(metrics.blurred(held, s)), truth) for s in (1.0, 1.5, 2.0)}
    assert ratio[1.5] == pytest.approx(SHARPNESS, abs=0.02)
    assert ratio[2.0] < SHARPNESS < ratio[1.0]


def test_brightness_bias_and_hole_geometry():
    truth = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1
    darker = truth - 0.05
    assert metrics.brightness_bias(metrics.hole_hwc(darker), metrics.hole_hwc(truth)) == pytest.approx(-0.05)
    mask = metrics.centre_mask(64)
    assert mask.sum() == 32 * 32 and mask[0, 0, 16, 16] == 1 and mask[0, 0, 15, 16] == 0
    assert metrics.hole_hwc(truth).shape == (2, 32, 32, 3)


def test_train_and_held_out_patches_come_from_different_photographs():
    assert not set(data.TRAIN_PHOTOS) & set(data.HELD_OUT_PHOTOS)
    patches = data.load(32)
    assert len(patches.photos) == 2 * len(data.TRAIN_PHOTOS)  # each photo at two scales
    held = [p for n in data.HELD_OUT_PHOTOS for p in data.grid_patches(data.rescaled(data.photo(n), 64), 32)]
    torch.testing.assert_close(patches.held_out, data._chw(np.stack(held)))
    assert patches.held_out.shape == (30, 3, 32, 32)
    batch = patches.batch(8, torch.device("cpu"))
    assert batch.shape == (8, 3, 32, 32) and 0.0 <= float(batch.min()) and float(batch.max()) <= 1.0


def test_the_posts_layer_counts():
    def count(model, kind):
        return sum(isinstance(m, kind) for m in model.modules())

    v1, v2 = Inpainter(), Inpainter(depth=2)
    assert count(v1, nn.Conv2d) == 7 and count(v2, nn.Conv2d) == 14  # "7 Conv"; v2 doubles them
    # "2 Maxpooling, 2 Upsampling": one module each, applied twice in forward()
    x = torch.rand(2, 3, 32, 32)
    calls = {"pool": 0, "up": 0}
    v1.pool.register_forward_hook(lambda *a: calls.__setitem__("pool", calls["pool"] + 1))
    v1.up.register_forward_hook(lambda *a: calls.__setitem__("up", calls["up"] + 1))
    out = v1(x).detach()
    assert calls == {"pool": 2, "up": 2} and out.shape == x.shape
    assert 0.0 < float(out.min()) and float(out.max()) < 1.0  # sigmoid output, as BCE needs


def test_hole_loss_is_the_loss_of_the_hole_alone():
    g = torch.Generator().manual_seed(0)
    x, out = torch.rand(2, 3, 32, 32, generator=g), torch.rand(2, 3, 32, 32, generator=g)
    mask = metrics.centre_mask(32)
    h = metrics.hole_slice(32)
    for loss in ("bce", "l1"):
        full = reconstruction(out[..., h, h], x[..., h, h], torch.ones(1, 1, 16, 16), loss, "image")
        torch.testing.assert_close(reconstruction(out, x, mask, loss, "hole"), full)


def test_inference_gap_and_recalibration_leave_the_model_alone():
    model = Inpainter(norm="batch", dropout=0.25).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(4, 3, 32, 32)
    inference_gap(model, x, metrics.hole_slice(32), passes=2)
    recalibrated(model, [x, x])
    assert not model.training
    for k, v in model.state_dict().items():
        torch.testing.assert_close(v, before[k])


# The whole quick grid (70 runs) takes ~4 min of CPU, too long for the suite: the test runs the post's
# failure and the two dropout placements on 6 seeds (~60 s of CPU), where a 90% share means every seed;
# `failbench run blurry_inpainting && failbench check` runs the rest on the profile's 10.
SUBSET = ("baseline", "dropout", "spatial_dropout")


@pytest.mark.slow
@pytest.mark.grid
def test_quick_profile_expectations_hold(quick_expectations):
    table = quick_expectations("blurry_inpainting", SUBSET, seeds=6)
    assert set(table["variant"]) == set(SUBSET)
    assert (table["seeds"] == 6).all()


def test_inference_gap_is_zero_without_dropout_or_batch_norm_and_sees_dropout():
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    hole = metrics.hole_slice(32)
    plain = inference_gap(Inpainter().eval(), x, hole, passes=3)
    torch.testing.assert_close(plain["eval"], plain["train"])
    torch.testing.assert_close(plain["relu_eval"], plain["relu_train"])
    torch.manual_seed(0)
    noisy = inference_gap(Inpainter(dropout=0.25).eval(), x, hole, passes=3)
    assert not torch.allclose(noisy["relu_eval"][1:], noisy["relu_train"][1:])
    torch.testing.assert_close(noisy["relu_eval"][0], noisy["relu_train"][0])  # no dropout before the 1st


def test_recalibrated_statistics_are_the_exact_average_of_the_batches():
    model = Inpainter(norm="batch")
    batches = [torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    first = recalibrated(model, batches).enc1[1]
    conv = model.enc1[0]
    outputs = [conv(b).detach() for b in batches]
    means = torch.stack([o.mean(dim=(0, 2, 3)) for o in outputs]).mean(0)
    variances = torch.stack([o.var(dim=(0, 2, 3)) for o in outputs]).mean(0)  # unbiased, as BN keeps it
    torch.testing.assert_close(first.running_mean, means)
    torch.testing.assert_close(first.running_var, variances)


def test_learned_threshold_is_the_oracle_flat_fill():
    """16.6 dB: each held-out hole filled with its own true mean colour, on the quick 32x32 patches."""
    from failbench.cases.blurry_inpainting.case import FLAT_PSNR

    held = data.load(32).held_out
    truth = metrics.hole_hwc(held)
    flat = np.broadcast_to(truth.mean(axis=(1, 2), keepdims=True), truth.shape)
    assert metrics.psnr_db(flat, truth) == pytest.approx(FLAT_PSNR, abs=0.05)


def test_an_image_folder_is_square_rgb_and_split_at_the_end(tmp_path):
    from skimage import io

    rng = np.random.default_rng(0)
    io.imsave(tmp_path / "a.png", (rng.random((40, 30, 3)) * 255).astype(np.uint8))  # colour, not square
    io.imsave(tmp_path / "b.png", (rng.random((50, 70)) * 255).astype(np.uint8))  # grey
    io.imsave(tmp_path / "c.png", (rng.random((33, 61, 4)) * 255).astype(np.uint8))  # with alpha
    patches = data.load(32, str(tmp_path), held_out_images=1)
    assert patches.images.shape == (2, 3, 32, 32) and patches.images.dtype == torch.uint8
    assert patches.held_out.shape == (1, 3, 32, 32) and float(patches.held_out.max()) <= 1.0
    grey = patches.images[1].float()
    torch.testing.assert_close(grey[0], grey[1])  # a grey image is copied to all three channels
    with pytest.raises(ValueError, match="need more than 3 held out"):
        data.load(32, str(tmp_path), held_out_images=3)


def _reach(model: nn.Module, size: int = 96) -> list[tuple[int, int]]:
    """How far the output pixel at 4 phases against the pools sees, left and right of itself, with
    every ReLU made linear (the receptive field is geometry, not whether a unit is alive)."""
    for m in model.modules():
        if isinstance(m, nn.ReLU):
            m.forward = lambda x: x
    reach = []
    for pos in range(size // 2, size // 2 + 4):
        x = torch.rand(1, 3, size, size, requires_grad=True)
        model(x)[0, :, pos, pos].sum().backward()
        seen = (x.grad.abs().sum((0, 1)) > 0).any(1).nonzero()
        reach.append((pos - int(seen.min()), int(seen.max()) - pos))
    return reach


def test_receptive_field_reaches_2_to_5_px_past_a_64px_hole_and_the_dilated_one_14_to_17():
    """model.py's geometry: a 64x64 patch's hole centre is 16 px from the border."""
    torch.manual_seed(0)
    plain, dilated = _reach(Inpainter()), _reach(Inpainter(dilation=2))
    assert {r - 16 for pair in plain for r in pair} <= set(range(2, 6))
    assert {r - 16 for pair in dilated for r in pair} <= set(range(14, 18))
    assert min(min(pair) for pair in plain) >= 16  # on a 32x32 patch (centre 16 px from its edge): all of it


def test_spatial_dropout_drops_whole_feature_maps_once_after_the_bottleneck():
    model = Inpainter(spatial_dropout=0.25).train()
    assert sum(isinstance(m, (nn.Dropout, nn.Dropout2d)) for m in model.modules()) == 1
    seen = {}
    model.mid_dropout.register_forward_hook(lambda m, a, o: seen.update(out=o, inp=a[0]))
    torch.manual_seed(0)
    model(torch.rand(8, 3, 32, 32))
    dropped = (seen["out"] == 0).flatten(2).all(2) & (seen["inp"] != 0).flatten(2).any(2)
    assert 0 < int(dropped.sum())  # whole maps zeroed ...
    kept = ~(seen["out"] == 0).flatten(2).all(2)
    torch.testing.assert_close(seen["out"][kept], seen["inp"][kept] / 0.75)  # ... the rest scaled by 1/(1-p)
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    gap = inference_gap(model.eval(), x, metrics.hole_slice(32), passes=3)
    torch.testing.assert_close(gap["relu_eval"][:5], gap["relu_train"][:5])  # the 5 ReLUs before it: untouched


def test_inference_contrast_is_the_shift_over_the_truths_mean_and_image_sharpness_sees_the_border():
    from failbench.runner import RunContext

    case = load_case("blurry_inpainting")
    torch.manual_seed(0)
    out = case.train(case.config("dropout", overrides=case.smoke_budget), RunContext(torch.device("cpu"), 0))
    truth_mean = float(metrics.hole_hwc(data.load(32).held_out).mean())
    assert out["inference_contrast"] == pytest.approx(out["inference_shift"] / truth_mean, abs=1e-5)
    held = data.load(32).held_out
    assert metrics.sharpness_ratio(metrics.whole_hwc(held), metrics.whole_hwc(held)) == pytest.approx(1.0)
    border_only = metrics.centre_mask(32) * held.mean() + (1 - metrics.centre_mask(32)) * held  # flat hole
    assert metrics.sharpness_ratio(metrics.hole_hwc(border_only), metrics.hole_hwc(held)) < 0.05
    assert metrics.sharpness_ratio(metrics.whole_hwc(border_only), metrics.whole_hwc(held)) > 0.5
