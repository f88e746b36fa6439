"""Forward/backward hook probes that attach to any nn.Module and measure what symptoms are made of.

Inside `with Probe(model) as probe:` every forward and backward pass is measured; outside it no hook
is attached, so a loop pays nothing on the steps it does not log. The last pass in the block wins.

- saturation[name]: share of a Hardtanh / Tanh / Sigmoid layer's outputs in the flat region. For
  Hardtanh that is exactly where PyTorch's backward gives zero (input <= min_val or >= max_val, see
  aten hardtanh_backward); tanh and sigmoid are never exactly flat, so a unit counts as saturated
  where its slope is below `flat_slope` (1%) of the slope's peak.
- zero[name] / dead[name]: per ReLU, the share of outputs that are zero, and the share of units
  (every non-batch position) that are zero on every example of the batch: dead for this batch.
- grad_norm[name]: L2 norm of the gradient of a layer's own `weight` in the last backward pass.
- spread: the std across the batch (dim 0, population std) of the probed module's output, averaged
  over its other elements; ~0 when a network gives every input the same output.
"""

from __future__ import annotations

import torch
from torch import nn

FLAT_SLOPE = 0.01  # a tanh/sigmoid unit whose slope is under 1% of its peak passes almost nothing back
SATURATING = (nn.Hardtanh, nn.Tanh, nn.Sigmoid)  # nn.ReLU6 is a Hardtanh, so it is covered


def flat_units(pre, out, activation: str, flat_slope: float = FLAT_SLOPE, bounds=(-1.0, 1.0)):
    """Boolean mask of the units that pass (almost) no gradient back, from the pre-activation and
    the activation (torch tensors or numpy arrays alike): the one flat-region rule of the probes and
    the trace. `activation` is hardtanh (flat outside `bounds`), tanh or sigmoid."""
    if activation == "hardtanh":
        return (pre <= bounds[0]) | (pre >= bounds[1])
    if activation == "tanh":
        return 1.0 - out**2 < flat_slope  # tanh' = 1 - tanh^2, peak 1 at 0
    if activation == "sigmoid":
        return out * (1.0 - out) < flat_slope * 0.25  # sigmoid' = s(1-s), peak 1/4 at 0
    raise TypeError(f"{activation} is not a saturating activation")


def flat_region(
    module: nn.Module, inputs: torch.Tensor, outputs: torch.Tensor, flat_slope: float = FLAT_SLOPE
) -> torch.Tensor:
    """Boolean mask of the units of one saturating layer that pass (almost) no gradient back."""
    if isinstance(module, nn.Hardtanh):
        return flat_units(inputs, outputs, "hardtanh", flat_slope, (module.min_val, module.max_val))
    for kind, name in ((nn.Tanh, "tanh"), (nn.Sigmoid, "sigmoid")):
        if isinstance(module, kind):
            return flat_units(inputs, outputs, name, flat_slope)
    raise TypeError(f"{type(module).__name__} is not a saturating activation")


class Probe:
    """Hooks on `model`: saturation per saturating layer, zero and dead share per ReLU, gradient
    norm per layer weight, and, when `spread_of` names a module ("" is the model itself), the
    spread of its output across the batch."""

    def __init__(self, model: nn.Module, spread_of: str | None = None, flat_slope: float = FLAT_SLOPE):
        self.model = model
        self.spread_of = spread_of
        self.flat_slope = flat_slope
        self._handles: list = []
        self._found: list[tuple[str, nn.Module]] | None = None
        self.saturation: dict[str, float] = {}
        self.zero: dict[str, float] = {}
        self.dead: dict[str, float] = {}
        self.grad_norm: dict[str, float] = {}
        self.spread: float = float("nan")

    def attach(self) -> Probe:
        if self._handles:
            return self
        for name, module in self._targets():
            if isinstance(module, SATURATING):
                self._handles.append(module.register_forward_hook(self._saturation_hook(name)))
            elif isinstance(module, nn.ReLU):
                self._handles.append(module.register_forward_hook(self._relu_hook(name)))
            weight = getattr(module, "weight", None)
            if isinstance(weight, nn.Parameter) and weight.requires_grad:
                self._handles.append(weight.register_hook(self._grad_hook(name)))
            if name == self.spread_of:
                self._handles.append(module.register_forward_hook(self._spread_hook))
        return self

    def _targets(self) -> list[tuple[str, nn.Module]]:
        """The modules worth a hook, found once: a loop that probes every ~100th step should not
        walk the module tree each time."""
        if self._found is None:
            self._found = [
                (n, m)
                for n, m in self.model.named_modules()
                if isinstance(m, (*SATURATING, nn.ReLU))
                or n == self.spread_of
                or isinstance(getattr(m, "weight", None), nn.Parameter)
            ]
        return self._found

    def detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def __enter__(self) -> Probe:
        return self.attach()

    def __exit__(self, *exc) -> None:
        self.detach()

    def _saturation_hook(self, name: str):
        def hook(module, args, output):
            with torch.no_grad():
                mask = flat_region(module, args[0], output, self.flat_slope)
                self.saturation[name] = float(mask.float().mean())

        return hook

    def _relu_hook(self, name: str):
        def hook(module, args, output):
            with torch.no_grad():
                zero = output == 0
                self.zero[name] = float(zero.float().mean())
                self.dead[name] = float(zero.all(dim=0).float().mean())

        return hook

    def _grad_hook(self, name: str):
        def hook(grad):
            self.grad_norm[name] = float(grad.detach().norm())

        return hook

    def _spread_hook(self, module, args, output):
        with torch.no_grad():
            self.spread = float(output.detach().std(dim=0, correction=0).mean())
