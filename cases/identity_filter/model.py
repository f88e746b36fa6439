"""The post's filter network, its inits, and the measures of how far it is from an identity.

hidden layers of 3x3 'same' convolutions + hard tanh (no pooling), then a 3x3 conv to one map and
tanh. `skip` adds the input to the output conv's pre-activation (learn x + f(x), kept inside the
post's tanh so the output range does not change).
"""

from __future__ import annotations

import torch
from torch import nn

ACTIVATIONS = {"hardtanh": nn.Hardtanh, "relu": nn.ReLU}
PEAK = 2.0  # pixels span [-1, 1], so the PSNR peak-to-peak value is 2


class FaceFilter(nn.Module):
    def __init__(self, hidden_layers: int, maps: int, activation: str = "hardtanh", skip: bool = False):
        super().__init__()
        layers, channels = [], 1
        for _ in range(hidden_layers):
            layers += [nn.Conv2d(channels, maps, 3, padding=1), ACTIVATIONS[activation]()]
            channels = maps
        self.hidden = nn.Sequential(*layers)
        self.out = nn.Conv2d(channels, 1, 3, padding=1)
        self.squash = nn.Tanh()  # a module, so probes see the output's saturation
        self.skip = skip
        self.radius = hidden_layers + 1  # each 3x3 conv widens the receptive field by one pixel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.out(self.hidden(x))
        return self.squash(z + x if self.skip else z)

    def convs(self) -> list[nn.Conv2d]:
        return [m for m in self.modules() if isinstance(m, nn.Conv2d)]


def initialise(model: FaceFilter, init: str) -> None:
    """'default' keeps PyTorch's Conv2d init, U(+-1/sqrt(fan_in)) for weights and biases, which
    scales a signal by ~1/sqrt(3) per layer; 'dirac' is the post's hand-set kernel (a lone 1 in the
    centre, torch.nn.init.dirac_) with zero bias; 'kaiming' is He et al. 2015, N(0, 2/fan_in),
    zero bias."""
    if init == "default":
        return
    for conv in model.convs():
        if init == "dirac":
            nn.init.dirac_(conv.weight)
        elif init == "kaiming":
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
        else:
            raise ValueError(f"unknown init {init!r}")
        nn.init.zeros_(conv.bias)


def psnr_db(output: torch.Tensor, target: torch.Tensor) -> float:
    mse = torch.mean((output.double() - target.double()) ** 2)
    return float(10.0 * torch.log10(PEAK**2 / mse))


def tanh_ceiling(faces: torch.Tensor) -> tuple[float, float, float]:
    """(PSNR dB, gain, bias) of the best centred-delta filter through the tanh output:
    tanh(gain * x + bias). A tanh never reaches +-1, so a gain that makes the bright and dark pixels
    right overshoots the mid-grey ones; this caps every filter the post's hand-set kernel belongs
    to. Least squares by Gauss-Newton in float64 from the hand-set gain 1, bias 0 (20 iterations
    converge to ~1e-12 on these faces)."""
    x = faces.detach().double().flatten()
    theta = torch.tensor([1.0, 0.0], dtype=torch.float64)
    for _ in range(20):
        y = torch.tanh(theta[0] * x + theta[1])
        slope = 1.0 - y**2
        jac = torch.stack([slope * x, slope], dim=1)
        theta = theta - torch.linalg.solve(jac.T @ jac, jac.T @ (y - x))
    gain, bias = float(theta[0]), float(theta[1])
    return psnr_db(torch.tanh(gain * x + bias), x), gain, bias


def impulse_response(model: FaceFilter, faces: torch.Tensor) -> torch.Tensor:
    """The end-to-end response to a unit impulse at the centre pixel of each face, linearised at
    that face (forward-mode autodiff, exact): N x (2r+1) x (2r+1), r the receptive radius. For the
    identity it is a lone centred value, the post's hand-set kernel."""
    _, _, h, w = faces.shape
    cy, cx, r = h // 2, w // 2, model.radius
    tangent = torch.zeros_like(faces)
    tangent[:, :, cy, cx] = 1.0
    _, response = torch.func.jvp(model, (faces,), (tangent,))
    return response[:, 0, max(cy - r, 0) : cy + r + 1, max(cx - r, 0) : cx + r + 1].detach()


def off_centre_share(response: torch.Tensor) -> torch.Tensor:
    """Per face: share of the response's energy outside the centre tap; 0 for a scaled delta."""
    n, h, w = response.shape
    energy = (response**2).flatten(1).sum(1)
    centre = response[:, h // 2, w // 2] ** 2
    return torch.where(energy > 0, 1.0 - centre / energy.clamp_min(1e-30), torch.ones_like(energy))


def probe_metrics(probe, model: FaceFilter, per_layer: bool = False) -> dict[str, float]:
    """From a harness Probe: hard tanh saturation averaged over the hidden layers (0 with none);
    `open_paths`, the product over hidden layers of the share of units off their flat region: the
    share of input-to-output paths on which every hard tanh passes gradient, were the layers'
    flat units independent (1 with no hidden layer, or ReLU);
    ReLU dead share, the output tanh's saturation, and the weight-gradient norms of the first and
    last conv; `per_layer` adds each layer's own (only at the end: each logged value costs MLflow
    ~0.5 ms a point)."""
    hidden = [n for n in probe.saturation if n.startswith("hidden")]
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]  # input first
    first, last = probe.grad_norm[convs[0]], probe.grad_norm[convs[-1]]
    open_paths = 1.0
    for n in hidden:
        open_paths *= 1.0 - probe.saturation[n]
    out = {
        "sat_out": probe.saturation["squash"],
        "grad_norm_first": first,
        "grad_norm_last": last,
        "sat_hidden": sum(probe.saturation[n] for n in hidden) / len(hidden) if hidden else 0.0,
        "open_paths": open_paths,
        # 0 when not even the output layer gets a gradient: nothing flows anywhere
        "grad_first_over_last": first / last if last > 0 else 0.0,
    }
    if probe.dead:
        out["dead_hidden"] = sum(probe.dead.values()) / len(probe.dead)
    if per_layer:
        out.update({f"sat_hidden{i}": probe.saturation[n] for i, n in enumerate(hidden, 1)})
        out.update({f"dead_hidden{i}": v for i, v in enumerate(probe.dead.values(), 1)})
        out.update({f"grad_norm_conv{i}": probe.grad_norm[n] for i, n in enumerate(convs, 1)})
    return out


def _signed(a: torch.Tensor) -> torch.Tensor:
    """Signed values to [0, 1] grey, 0 at mid-grey, the largest magnitude at black or white."""
    return 0.5 + a / (2 * a.abs().max().clamp_min(1e-12))


def _tile(tiles: list[torch.Tensor], zoom: int) -> torch.Tensor:
    """Tiles side by side with a one-pixel white gap, each pixel blown up zoom x zoom."""
    h = tiles[0].shape[0]
    gap = torch.ones(h, 1)
    row = torch.cat([t for tile in tiles for t in (tile.cpu(), gap)][:-1], dim=1)
    return row.repeat_interleave(zoom, 0).repeat_interleave(zoom, 1)


def pictures(model: FaceFilter, faces: torch.Tensor, response: torch.Tensor) -> dict[str, torch.Tensor]:
    """Four held-out faces and the net's copies, the mean end-to-end impulse response, and the
    first layer's kernels (the post: "they look nothing like the zeros-everywhere-but-the-middle")."""
    with torch.no_grad():
        shown = faces[:4]
        copies = model(shown)
        kernels = model.convs()[0].weight[:, 0]  # one input map: maps x 3 x 3, on one scale
        return {
            "faces_input": _tile([(f[0] + 1) / 2 for f in shown], 4),
            "faces_output": _tile([(f[0] + 1) / 2 for f in copies], 4),
            "response": _tile([_signed(response.mean(0))], 8),
            "kernels": _tile(list(_signed(kernels)), 8),
        }


def stability_limit(model: FaceFilter, faces: torch.Tensor) -> torch.Tensor:
    """Per face, 2 / lambda_max of the Gauss-Newton matrix of the squared error on that face alone
    (the Hessian at a solution, where the residual is ~0): the largest step at which plain SGD on
    that face does not overshoot along its stiffest direction. Float64, exact Jacobians."""
    import copy

    from torch.func import functional_call, jacrev

    model = copy.deepcopy(model).double()
    params = {k: v.detach() for k, v in model.named_parameters()}
    limits = []
    for face in faces.double():
        jac = jacrev(lambda p: functional_call(model, p, (face[None],)).flatten())(params)  # noqa: B023 - called at once
        jac = torch.cat([j.reshape(j.shape[0], -1) for j in jac.values()], dim=1)
        lam = 2.0 / jac.shape[0] * torch.linalg.matrix_norm(jac, 2) ** 2  # mse = mean over pixels
        limits.append(2.0 / lam)
    return torch.stack(limits)
