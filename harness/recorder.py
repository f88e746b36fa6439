"""The recorder behind `failbench.watch(model, optimizer)` (failbench.watching): the suite's per-layer
trace (failbench.trace) on any PyTorch loop.

    import failbench
    rec = failbench.watch(model, optimizer)      # hooks, no change to the loop
    ...  rec.log(step, loss=loss, accuracy=acc)  # what the loop already logs
    rec.save("trace.parquet")                    # or, inside an active MLflow run: rec.save()

The trace is the one the suite's cases record (failbench.trace.Trace), so `failbench diagnose`
compares it with their failing and cured runs. What this adds for an ordinary model is finding each
layer's activation however the model applies it. The cases pair a conv/linear module with the
activation module that follows it in definition order; a user model calls `F.relu(x)` or
`torch.tanh` inside `forward`, reuses one `nn.ReLU` twice (a residual block), or puts a BatchNorm in
between. So on the one forward per traced step that is recorded anyway, a TorchFunctionMode watches
the calls, in the order they run: a conv/linear output is followed through the calls that keep its
units (batch norm, dropout, pooling, a reshape, a residual add) to the first activation function
applied to it, module or functional. That call's input is the layer's pre-activation and its
result the activation. A layer no activation follows is recorded with activation "none".
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from failbench.trace import GROWTH, Trace, WatchedLayer, layer_kind

# The functions that apply an activation, by the trace's names for them. The smooth ReLU-likes
# (GELU, SiLU, ELU, Mish, softplus) pass everything above 0 and a bounded tail below: for the
# trace's statistics (dead units, no saturation bound) they are read as a leaky ReLU.
ACTIVATION_FUNCTIONS = {
    "relu": (F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_, F.relu6),
    "leaky": (
        F.leaky_relu,
        F.leaky_relu_,
        F.gelu,
        F.silu,
        F.elu,
        F.elu_,
        F.mish,
        F.softplus,
        F.selu,
        torch.selu,
    ),
    "tanh": (torch.tanh, torch.tanh_, F.tanh, torch.Tensor.tanh, torch.Tensor.tanh_),
    "sigmoid": (torch.sigmoid, torch.sigmoid_, F.sigmoid, torch.Tensor.sigmoid, torch.Tensor.sigmoid_),
    "hardtanh": (F.hardtanh, F.hardtanh_),
}
_KIND = {fn: kind for kind, fns in ACTIVATION_FUNCTIONS.items() for fn in fns}
# Calls whose output keeps the units of their first tensor argument: a layer's output followed
# through them still belongs to that layer.
_KEEPS_UNITS = {
    F.batch_norm,
    F.instance_norm,
    F.group_norm,
    F.layer_norm,
    F.dropout,
    F.dropout1d,
    F.dropout2d,
    F.dropout3d,
    F.max_pool1d,
    F.max_pool2d,
    F.max_pool3d,
    F.avg_pool1d,
    F.avg_pool2d,
    F.avg_pool3d,
    F.adaptive_avg_pool2d,
    F.adaptive_max_pool2d,
    torch.Tensor.__add__,
    torch.Tensor.__iadd__,
    torch.add,
    torch.Tensor.add,
    torch.Tensor.add_,
    torch.Tensor.contiguous,
    torch.Tensor.clone,
}
_INPLACE = {
    F.relu_,
    torch.relu_,
    torch.Tensor.relu_,
    F.leaky_relu_,
    F.elu_,
    torch.tanh_,
    torch.Tensor.tanh_,
    torch.sigmoid_,
    torch.Tensor.sigmoid_,
    F.hardtanh_,
}


class _FollowActivations(TorchFunctionMode):
    """During one forward: which activation function first consumes each watched layer's output."""

    def __init__(self, produced: dict[int, tuple[torch.Tensor, str]]):
        super().__init__()
        self.produced = produced  # id(tensor) -> (the tensor, kept alive so its id stays its own; layer)
        self.found: dict[str, tuple[str, torch.Tensor, torch.Tensor]] = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        first = args[0] if args else kwargs.get("input")
        owner = self.produced.get(id(first)) if torch.is_tensor(first) else None
        layer = owner[1] if owner is not None and owner[0] is first else None
        kind = _KIND.get(func)
        if kind is not None and layer is not None and layer not in self.found:
            inplace = func in _INPLACE or kwargs.get("inplace", False) or (len(args) > 1 and args[-1] is True)
            pre = first.detach().clone() if inplace else first
            out = func(*args, **kwargs)
            self.found[layer] = (kind, pre, out)
            return out
        out = func(*args, **kwargs)
        if layer is not None and func in _KEEPS_UNITS and torch.is_tensor(out):
            self.produced[id(out)] = (out, layer)
        return out


class FollowCalls:
    """A Trace's pairing for an arbitrary nn.Module (Trace.watch(model, pairing)): the weighted
    layers in the order they run, each with the activation found by following its output through the
    calls on the traced forward (module docstring); activation modules are not captured (the
    TorchFunctionMode sees their calls, and those of functions)."""

    def __init__(self) -> None:
        self.produced: dict[int, tuple[torch.Tensor, str]] = {}  # id(output) -> (output, layer)
        self.order: list[str] = []  # the layers in the order their outputs appeared
        self.mode: _FollowActivations | None = None

    def layers(self, model: nn.Module) -> tuple[list[WatchedLayer], list[tuple[str, nn.Module]]]:
        watched = []
        for name, module in model.named_modules():
            kind = layer_kind(module)
            if kind:
                watched.append(WatchedLayer(name or type(module).__name__.lower(), kind, module=module))
        return watched, [(layer.name, layer.module) for layer in watched]

    def on_capture(self):
        produced, order = self.produced, self.order  # plain objects in a closure: a model's deepcopy shares them

        def capture(name: str, output: torch.Tensor) -> None:
            if name:
                produced[id(output)] = (output, name)
                order.append(name)

        return capture

    def hooks(self, trace: Trace, model: nn.Module) -> list:
        def enter(module, args) -> None:
            if trace.capturing and self.mode is None and torch.is_grad_enabled():
                self.produced.clear()
                self.order.clear()
                self.mode = _FollowActivations(self.produced)
                self.mode.__enter__()

        def leave(module, args, output) -> None:
            if self.mode is None:
                return
            self.mode.__exit__(None, None, None)
            found, self.mode = self.mode.found, None
            self.produced.clear()
            position = {name: i for i, name in enumerate(dict.fromkeys(self.order))}
            trace.watched.sort(key=lambda layer: position.get(layer.name, len(position)))
            for layer in trace.watched:
                if layer.name in found:
                    kind, pre, out = found[layer.name]
                    layer.activation, layer.seen_as = kind, f"{layer.name}:activation"
                    trace.keep(layer.seen_as, pre, out)
                else:
                    layer.activation, layer.seen_as = "none", None

        return [model.register_forward_pre_hook(enter), model.register_forward_hook(leave)]


class Recorder:
    """What `failbench.watch` returns: log the loop's scalars, save the trace."""

    def __init__(
        self,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        growth: float = GROWTH,
        on_traced: Callable[[Recorder, int], None] | None = None,
    ):
        """`on_traced(recorder, step)`: called after each step whose per-layer statistics were traced,
        and at a loss that stopped being finite (failbench.watching's warning reads the trace so far
        there)."""
        self.on_traced = on_traced
        # A hand-written optimizer that is no torch.optim.Optimizer steps unseen: the update statistics
        # (and TheDeepChecker's periods) are then missing, and the rules that read them abstain.
        self.optimizer = optimizer
        self.trace = Trace(
            growth=growth, scalars={"loss": "loss", "train_accuracy": "accuracy", "val_accuracy": "val_accuracy"}
        )
        self.trace.watch(model, FollowCalls())

    def log(
        self,
        step: int,
        loss: float | torch.Tensor | None = None,
        accuracy: float | None = None,
        val_accuracy: float | None = None,
    ) -> None:
        """Call once per logged step, after `loss.backward()` and `optimizer.step()` (the statistics
        are of the forward and backward of the step just done). Accuracies as fractions in [0, 1]."""
        values = {"loss": loss, "accuracy": accuracy, "val_accuracy": val_accuracy}
        metrics = {k: float(v.detach()) if torch.is_tensor(v) else float(v) for k, v in values.items() if v is not None}
        traced = len(self.trace._traced)  # the steps traced so far (Trace keeps them for its schedule)
        self.trace.on_log(int(step), {k: v for k, v in metrics.items() if v == v and abs(v) != float("inf")})
        diverged = any(v != v or abs(v) == float("inf") for v in metrics.values())
        if diverged:
            self.trace.diverged(int(step))
        if self.on_traced is not None and (diverged or len(self.trace._traced) > traced):
            self.on_traced(self, int(step))

    def frame(self):
        return self.trace.frame()

    def save(self, path: str | Path | None = None) -> Path | None:
        """Write the trace as Parquet to `path`; with no path, log it to the active MLflow run as
        `trace.parquet` (what `failbench diagnose mlflow:RUN_ID` reads)."""
        frame = self.trace.frame()
        if path is not None:
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.to_parquet(path, index=False)
            return path
        import tempfile

        import mlflow

        if mlflow.active_run() is None:
            raise RuntimeError("Recorder.save() with no path needs an active MLflow run (mlflow.start_run())")
        with tempfile.TemporaryDirectory() as folder:
            target = Path(folder) / "trace.parquet"
            frame.to_parquet(target, index=False)
            mlflow.log_artifact(str(target))
        return None

    def close(self) -> None:
        """Remove the hooks (the trace stays readable)."""
        self.trace.close()


# A user's loop does not say how long it will run, and a failure it ends in must be on its last
# traced steps (the rules read the last two): traced steps 1.25x apart, not the cases' 2x, put the
# last two within the run's last ~36% (a 300-step loop logged every 10 steps: 13 traced steps, the
# last at 300, where 2x traces 6, the last at 160).
USER_GROWTH = 1.25
