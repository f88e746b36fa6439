"""identity_filter: the measures against references, the Dirac identity, the stability limits the
learning constants are read against, and the expectations."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from failbench.cases.identity_filter.case import LARGE_LR, SMALL_LR
from failbench.cases.identity_filter.data import load_faces, split
from failbench.cases.identity_filter.model import (
    FaceFilter,
    impulse_response,
    initialise,
    off_centre_share,
    probe_metrics,
    psnr_db,
    stability_limit,
    tanh_ceiling,
)
from failbench.probes import Probe


def test_faces_are_the_post_range_and_the_split_is_disjoint():
    faces = load_faces()
    assert faces.shape == (100, 1, 25, 25)
    assert float(faces.min()) == -1.0 and float(faces.max()) == 1.0
    train, held = split(faces, 1, 20)
    assert torch.equal(train, faces[:1]) and torch.equal(held, faces[80:])
    with pytest.raises(ValueError):
        split(faces, 81, 20)


def test_a_face_folder_is_grey_square_and_in_range(tmp_path):
    from skimage import io

    rng = np.random.default_rng(0)
    io.imsave(tmp_path / "a.png", (rng.random((40, 30, 3)) * 255).astype(np.uint8))
    io.imsave(tmp_path / "b.png", (rng.random((50, 50)) * 255).astype(np.uint8))
    faces = load_faces(str(tmp_path), size=25)
    assert faces.shape == (2, 1, 25, 25)
    assert -1.0 <= float(faces.min()) and float(faces.max()) <= 1.0


def test_psnr_by_hand():
    target = torch.zeros(2, 1, 5, 5)
    # error 0.1 everywhere: mse 0.01, peak-to-peak 2 -> 10 log10(4 / 0.01) = 26.0206 dB
    assert psnr_db(target + 0.1, target) == pytest.approx(26.0206, abs=1e-4)


def test_ceiling_is_the_best_gain_and_bias_by_brute_force():
    held = load_faces()[95:]  # five faces keep the brute force quick
    ceiling, gain, bias = tanh_ceiling(held)
    x = held.double().flatten()
    gains = torch.linspace(1.0, 1.4, 201, dtype=torch.float64)  # steps of 0.002
    biases = torch.linspace(-0.05, 0.05, 26, dtype=torch.float64)[:, None]  # steps of 0.004
    mse = min(float(((torch.tanh(g * x + biases) - x) ** 2).mean(dim=1).min()) for g in gains)
    best = 10 * np.log10(4 / mse)
    assert ceiling >= best - 1e-6  # no grid point beats the fit
    assert ceiling == pytest.approx(best, abs=0.02)  # and the grid gets close to it
    handset = psnr_db(torch.tanh(x), x)  # the post's kernel: gain 1, bias 0
    assert 1.0 < gain < 1.4 and abs(bias) < 0.05 and ceiling > handset


def test_ceiling_is_a_stationary_point_of_the_squared_error():
    x = load_faces()[:10].double().flatten()
    _, gain, bias = tanh_ceiling(x)
    theta = torch.tensor([gain, bias], dtype=torch.float64, requires_grad=True)
    torch.mean((torch.tanh(theta[0] * x + theta[1]) - x) ** 2).backward()
    assert float(theta.grad.abs().max()) < 1e-10


@pytest.mark.parametrize("hidden_layers", [0, 1, 3, 5])
def test_dirac_init_is_exactly_the_hand_set_identity_at_every_depth(hidden_layers):
    faces = load_faces()[:8]
    model = FaceFilter(hidden_layers, maps=4)
    initialise(model, "dirac")
    with torch.no_grad():
        out = model(faces)
    # a lone 1 in the centre, hard tanh passes [-1, 1] unchanged: the post's tanh(x), bit for bit
    assert torch.equal(out, torch.tanh(faces))
    response = impulse_response(model, faces)
    assert response.shape == (8, 2 * hidden_layers + 3, 2 * hidden_layers + 3)
    assert torch.all(off_centre_share(response) == 0.0)


def test_impulse_response_matches_the_autograd_jacobian():
    torch.manual_seed(0)
    model = FaceFilter(1, maps=3)  # receptive radius 2: a 5x5 response
    face = torch.rand(1, 1, 9, 9) * 2 - 1
    response = impulse_response(model, face)[0]
    jacobian = torch.autograd.functional.jacobian(model, face, vectorize=True)[0, 0, :, :, 0, 0, 4, 4]
    torch.testing.assert_close(response, jacobian[2:7, 2:7])
    assert float(jacobian.abs().sum()) == pytest.approx(float(response.abs().sum()), rel=1e-5)


def test_off_centre_share_by_hand():
    delta = torch.zeros(1, 3, 3)
    delta[0, 1, 1] = 2.0
    assert float(off_centre_share(delta)[0]) == 0.0
    split_ = delta.clone()
    split_[0, 0, 0] = 2.0  # half the energy off centre
    assert float(off_centre_share(split_)[0]) == pytest.approx(0.5)


def test_default_init_shrinks_the_signal_with_depth():
    """PyTorch's default conv init scales a signal by ~1/sqrt(3) a layer: the deep nets start
    with almost no path from input to output (the README's account of the stall)."""
    faces = load_faces()[80:]
    norms = []
    for depth in (0, 3, 5):
        torch.manual_seed(0)
        norms.append(float(impulse_response(FaceFilter(depth, 4), faces).flatten(1).norm(dim=1).mean()))
    assert norms[0] > norms[1] > norms[2]


def test_stability_limit_matches_a_step_by_hand():
    """Depth 0, bias only: the output is tanh(b + w*x), and with w = 0 the squared error's
    Gauss-Newton curvature along b is 2 * mean(tanh'(b)^2) = 2 at b = 0, so 2/lambda is at most 1
    (the 9 weights only add curvature); a face of all zeros leaves the bias alone: exactly 1."""
    model = FaceFilter(0, maps=1)
    with torch.no_grad():
        model.out.weight.zero_()
        model.out.bias.zero_()
    assert float(stability_limit(model, torch.zeros(1, 1, 5, 5))[0]) == pytest.approx(1.0, rel=1e-9)
    assert model.out.weight.dtype == torch.float32  # the model measured is left as it was


def test_the_large_constant_is_stable_at_depth_0_and_past_the_limit_of_the_deep_identity():
    """The physics behind the lr axis: at the identity (Dirac weights) each of the L+1 layers adds
    the same curvature, so the stable step shrinks as 1/(L+1). LARGE_LR is inside depth 0's limit on
    every face and past depth 3's and 5's on most; SMALL_LR is inside all of them."""
    faces = split(load_faces(), 80, 20)[0][::40]  # 2 training faces keep the Jacobians quick
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 625 x 2000 Jacobian per face: threads only contend
    limits = {}
    for depth in (0, 3, 5):
        model = FaceFilter(depth, maps=8)
        initialise(model, "dirac")
        limits[depth] = stability_limit(model, faces)
    torch.set_num_threads(threads)
    assert float(limits[0].min()) > LARGE_LR
    for depth in (3, 5):
        torch.testing.assert_close(limits[depth] * (depth + 1), limits[0], rtol=0.02, atol=0.0)
        assert float(limits[depth].median()) < LARGE_LR / 1.5
    assert float(limits[5].min()) > SMALL_LR  # inside every depth's limit


def test_open_paths_is_the_product_of_the_open_shares():
    model = FaceFilter(2, maps=2)
    with torch.no_grad():  # layer 1 passes the face; layer 2 gets +-2: every unit flat
        for conv in model.convs():
            conv.weight.zero_()
            conv.bias.zero_()
        model.hidden[0].weight[:, 0, 1, 1] = 1.0
        model.hidden[2].bias.fill_(2.0)
    faces = load_faces()[:4]
    probe = Probe(model).attach()
    model(faces).sum().backward()
    probe.detach()
    metrics = probe_metrics(probe, model, per_layer=True)
    at_corner = float((faces.abs() >= 1.0).float().mean())  # hard tanh is flat from |x| = 1 on
    assert metrics["sat_hidden1"] == pytest.approx(at_corner)
    assert metrics["sat_hidden2"] == 1.0 and metrics["open_paths"] == 0.0


@pytest.mark.slow
@pytest.mark.grid
def test_quick_profile_expectations_hold(quick_expectations):
    """The baseline's expectations on the profile's 10 seeds (the other variants: `failbench check`):
    halted at the large constant from depth 3, learning at the small one and at depth 0 and 1 (9 of
    10 seeds at depth 1 and lr 0.5, so fewer seeds cannot judge it)."""
    table = quick_expectations("identity_filter", variants=("baseline",))
    assert len(table) == 8 and (table["seeds"] == 10).all()
