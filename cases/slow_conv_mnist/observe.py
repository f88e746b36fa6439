"""The trace's view of the hand-written layers (harness/trace.py): each Conv/Linear with the
activation after it, on a fixed batch of training digits, and the gradient and update of the step
just taken. Called at a traced check; the forward here only overwrites what the next step resets."""

from __future__ import annotations

import torch

from failbench.cases.slow_conv_mnist.model import SGD, Activation, Conv, Linear
from failbench.trace import Observed

BATCH = 32  # digits for the activation statistics (DeepDiagnosis feeds one batch, TheDeepChecker 50)


@torch.no_grad()
def observe(layers: list, x: torch.Tensor, opt) -> tuple[list[Observed], torch.Tensor]:
    """The layers as the trace sees them; the update is the step's own only under plain SGD
    (w -= lr * g), so under Adam the update ratio is left out rather than guessed."""
    lr = opt.lr if isinstance(opt, SGD) else None
    grads = {}
    for i, layer in enumerate(layers):  # before the forward below overwrites what they were made of
        if isinstance(layer, Conv) and hasattr(layer, "dw"):
            grads[i] = layer.dw
        elif isinstance(layer, Linear) and hasattr(layer, "d"):
            grads[i] = layer.d.t() @ layer.x
    found, pending = [], None
    for i, layer in enumerate(layers):
        if isinstance(layer, (Conv, Linear)):
            pre = torch.nn.functional.conv2d(x, layer.w, layer.b) if isinstance(layer, Conv) else layer.forward(x)
            g = grads.get(i)
            kind = "conv" if isinstance(layer, Conv) else "linear"
            update = None if g is None or lr is None else -lr * g
            pending = Observed(
                f"{type(layer).__name__.lower()}{i}", kind, pre=pre, weight=layer.w, grad=g, update=update
            )
            found.append(pending)
            x = pre
        elif isinstance(layer, Activation) and pending is not None:
            pending.activation = layer.kind
            x = layer.forward(x)
            pending.out = x
        else:
            x = layer.forward(x)
    return found, x
