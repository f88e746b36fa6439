"""A per-layer training trace: what the published diagnosis rules read, each at the cadence it can.

One recorder, two ways in. An nn.Module case calls `run.trace.watch(model)` once: cheap hooks keep a
reference to each activation's input and output of the last training forward, and at a traced
step (a `run.log` call that is due) the recorder reads them with the weights and their `.grad`.
A hand-written case calls `run.trace.record(step, layers=[Observed(...)], output=...)` at its
logging step with the tensors it has. Either way the trace is tidy rows (step, layer, kind,
activation, stat, value); layer "" holds the run's scalars (loss, accuracies, the output's spread).

Three cadences. The scalars (loss, accuracies) at every logged step: the tools' checks of them run
per epoch or per period, and every case logs ~100 points a run. The per-layer statistics at traced
steps, a log-spaced subset of the logged steps (each >= 2 x the last traced one, so ~10 points for
300 steps, ~17 for 20000): early steps, where most of these failures happen (one update kills
relu_blowup's map), are all there, and the cost falls with the run's length. And, for a watched
model, TheDeepChecker's per-iteration buffers over the PERIOD optimizer steps from each traced step
(`Period`): the update ratio averaged over a period, the rates of mean |g| and mean |w| between
consecutive iterations.

Per layer, batch first; a unit is a channel of a conv (its samples: batch x positions, as
TheDeepChecker's transform_2d(keep='last') makes them) or a feature of a linear layer.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

from failbench.contract import SCALARS
from failbench.probes import flat_units  # the same flat region as the probes: slope under 1% of its peak

GROWTH = 2.0  # next traced step >= 2 x the last one
ACTIVATIONS = {
    nn.ReLU: "relu",
    nn.LeakyReLU: "leaky",
    nn.Hardtanh: "hardtanh",
    nn.Tanh: "tanh",
    nn.Sigmoid: "sigmoid",
}  # nn.ReLU6 is a Hardtanh subclass: checked by isinstance below
SATURATING = ("tanh", "hardtanh", "sigmoid")
# TheDeepChecker's ro_B (metrics.py compute_ro_B) reads every saturating unit on [ro_histo_min,
# ro_histo_max] = [0, 1] (settings.yaml), whatever its activation: a tanh unit's negative outputs
# all fall in its first bin, so |2 g - 1| >= 1 there. As published, ro_B is the bin-weighted mean
# of |2 g_b - 1|, equal to the mean of |2 a - 1| (the bins split at 0.5, so no bin mixes signs).
TDC_RO_RANGE = (0.0, 1.0)
# Bounds and unit thresholds the rules read, named in the stat's description below:
DD_BOUND = 5.0  # DeepDiagnosis callbacks.py: min/max_threshold_tanh/sigmoid = -5 / 5
SM_BOUNDS = {
    "tanh": (-9.4999, 9.4999),
    "hardtanh": (-9.4999, 9.4999),  # SageMaker SaturatedActivation
    "sigmoid": (-23.0, 16.99999),
}  # docs defaults threshold_tanh, threshold_sigmoid
SM_INACTIVE = 0.01  # SageMaker DeadRelu / SaturatedActivation threshold_inactivity 1.0 (%)
TDC_DEAD = (1e-5, 0.95)  # TheDeepChecker settings.yaml Activation.Dead: act_min_thresh, act_maj_percentile
TDC_RO = 0.85  # TheDeepChecker settings.yaml Activation.Saturation.ro_max_thresh
TDC_W_DEAD = 1e-5  # TheDeepChecker settings.yaml Weight.Dead.value_min_thresh
SM_ALLCLOSE = dict(rtol=1e-5, atol=1e-8)  # SageMaker UnchangedTensor: numpy.allclose defaults
SM_EPSILON = 1e-9  # SageMaker WeightUpdateRatio epsilon: |update| / (|w| + epsilon)
# TheDeepChecker settings.yaml OverfitCheck period: its hooks append a weight's update ratio, mean |g|
# and mean |w| every iteration and judge them every 10 (hooks.py OverfitGradientHook, OverfitWeightHook)
PERIOD = 10
RATE_WINDOW = 5  # TheDeepChecker Gradient.Vanishing/Exploding, Weight.Diverging window_size: 4 consecutive rates
QUANTILE_SAMPLES = 1024  # percentiles from at most this many evenly strided samples: selection is the costly part
SAFE_SQUARE = (1e-15, 1e15)  # |x| inside: a sum of up to 1e8 float32 squares neither underflows nor overflows


@dataclass
class Observed:
    """One layer's tensors at a traced step. `pre` is the pre-activation (batch first); `out`, when
    not given, is computed from it; `update` is the change the step just made to `weight` (already
    applied: the update ratio is taken against the weight before it)."""

    name: str
    kind: str  # "conv" or "linear"
    activation: str = "none"
    pre: torch.Tensor | None = None
    out: torch.Tensor | None = None
    weight: torch.Tensor | None = None
    grad: torch.Tensor | None = None
    update: torch.Tensor | None = None
    reg_grad: torch.Tensor | None = None  # the gradient of an explicit regulariser alone


def activate(pre: torch.Tensor, activation: str) -> torch.Tensor:
    fn = {
        "relu": torch.relu,
        "leaky": lambda z: torch.nn.functional.leaky_relu(z, 0.01),
        "tanh": torch.tanh,
        "hardtanh": torch.nn.functional.hardtanh,
        "sigmoid": torch.sigmoid,
        "none": lambda z: z,
    }
    return fn[activation](pre)


def units(x: torch.Tensor) -> np.ndarray:
    """(samples, units): a conv's channels over batch x positions, a linear layer's features."""
    x = x.detach()
    x = x.transpose(0, 1).flatten(1).T if x.dim() > 2 else x.reshape(x.shape[0], -1)
    return x.float().cpu().numpy()


def _strided(x: np.ndarray, most: int = QUANTILE_SAMPLES) -> np.ndarray:
    return x[:: math.ceil(x.shape[0] / most)] if x.shape[0] > most else x


def _percentile(x: np.ndarray, q: float) -> np.ndarray:
    """Along axis 0, numpy's percentile with method="higher" (the sample at index ceil(q (n - 1))),
    by partition: a selection, not a sort."""
    k = math.ceil(q * (x.shape[0] - 1))
    return np.partition(x, k, axis=0)[k]


def _share(mask: np.ndarray) -> float:
    """The share of True in a boolean array (a count: a bool array's .mean() casts it to float64
    first, 5x slower on a 235k-weight layer)."""
    return np.count_nonzero(mask) / mask.size if mask.size else math.nan


def _std(x: np.ndarray) -> float:
    """Population std as the norm of the deviations (a third of numpy's float64 std's time; scaled,
    so constant_output's ~1e-26 weights keep their spread)."""
    if not x.size:
        return math.nan
    mean = x.mean(dtype=np.float64)
    return _norm(x - x.dtype.type(mean)) / math.sqrt(x.size)


def _norm(x: np.ndarray) -> float:
    """L2 norm, a float32 dot as numpy's own. Scaled by the largest |x| only where a square could
    leave float32's range (constant_output's ~1e-26 weights would underflow to 0): scaling makes a
    copy, and a copy of a large layer beside another temporary costs a fresh mapping (page faults:
    ~400 per call on a 235k-weight layer, 10x the arithmetic)."""
    top = max(float(x.max()), -float(x.min())) if x.size else 0.0  # |x|'s largest, with no |x| copy
    if top == 0.0 or not math.isfinite(top):
        return top
    flat = x.ravel()
    if SAFE_SQUARE[0] < top < SAFE_SQUARE[1]:
        return math.sqrt(float(np.dot(flat, flat)))
    scaled = flat / top
    return top * math.sqrt(float(np.dot(scaled, scaled)))


def activation_stats(pre: torch.Tensor, out: torch.Tensor, activation: str) -> dict[str, float]:
    """Statistics of one layer's pre-activation z and activation a (numpy: its per-call cost is a
    fraction of torch's on the small tensors most of these layers have)."""
    z, a = units(pre), units(out)
    s = {
        "act_zero": _share(a == 0),
        "act_nonpos": _share(a <= 0),
        "pre_mean": z.mean(dtype=np.float64),
        "pre_std": _std(z),
        "out_mean": a.mean(dtype=np.float64),
        "out_std": _std(a),
        # AUTOTRAINER layer_issue: a hidden layer's mean |output| >= omega_1 (10) is 'abnormal_data'
        "out_abs_mean": np.abs(a).mean(dtype=np.float64),
    }
    if activation in ("relu", "leaky"):
        rate = (a > 0).mean(0)  # per unit: share of its samples it is active on
        s.update(unit_activity=rate.mean(), unit_active_lt1=_share(rate < SM_INACTIVE))
    if activation in SATURATING:
        lo, hi = SM_BOUNDS[activation]
        r_lo, r_hi = TDC_RO_RANGE
        ro = np.abs(2 * (a - r_lo) / (r_hi - r_lo) - 1).mean(0)
        s.update(
            sat_bound=_share(np.abs(z) >= DD_BOUND),
            sat_flat=flat_units(z, a, activation).mean(),
            unit_inbounds_lt1=(((z > lo) & (z < hi)).mean(0) < SM_INACTIVE).mean(),
            unit_sat_ro=_share(ro > TDC_RO),
        )
    else:
        thresh, q = TDC_DEAD
        s["unit_dead_p95"] = _share(_percentile(np.abs(_strided(a)), q) < thresh)  # per unit
    return {k: float(v) for k, v in s.items()}


def _flat_numpy(x: torch.Tensor) -> np.ndarray:
    return x.detach().float().cpu().numpy().ravel()


def weight_stats(w: torch.Tensor) -> dict[str, float]:
    """One temporary at a time (see _norm): |w| < t counted as (w < t) less (w <= -t)."""
    w = _flat_numpy(w)
    return {
        "w_mean": float(w.mean(dtype=np.float64)),
        "w_std": _std(w),
        "w_absmean": float(np.abs(w).mean(dtype=np.float64)),
        "w_neg": _share(w < 0),
        "w_small": (np.count_nonzero(w < TDC_W_DEAD) - np.count_nonzero(w <= -TDC_W_DEAD)) / w.size,
        "w_norm": _norm(w),
        "numel": float(w.size),
    }


def grad_stats(g: torch.Tensor) -> dict[str, float]:
    g = _flat_numpy(g)
    few = _strided(g, 16 * QUANTILE_SAMPLES)
    # numpy's percentile, method="higher", at 5% and 95%: both order statistics from one selection
    low, high = (math.ceil(q * (few.size - 1)) for q in (0.05, 0.95))
    picked = np.partition(few, (low, high)) if few.size else few
    return {
        "g_mean": float(g.mean(dtype=np.float64)),
        "g_absmean": float(np.abs(g).mean(dtype=np.float64)),
        "g_norm": _norm(g),
        "g_zero": _share(g == 0),
        "g_range90": float(picked[high] - picked[low]) if few.size else math.nan,
    }


def update_stats(w: torch.Tensor, dw: torch.Tensor) -> dict[str, float]:
    """SageMaker's WeightUpdateRatio divides by |w| + epsilon (its `epsilon` parameter, default 1e-9,
    "to ensure Debugger does not divide by zero"); TheDeepChecker's mean-|update| ratio has no
    epsilon, so it is left out where the weights are all exactly zero (a ratio with no meaning)."""
    w, dw = _flat_numpy(w), _flat_numpy(dw)
    norm, absmean = _norm(w), float(np.abs(w).mean(dtype=np.float64))
    stats = {"upd_ratio": _norm(dw) / (norm + SM_EPSILON)}
    if absmean > 0:
        stats["upd_absmean_ratio"] = float(np.abs(dw).mean(dtype=np.float64)) / absmean
    return stats


def output_stats(y: torch.Tensor) -> dict[str, float]:
    """Spread across the batch: as harness.probes (population std over dim 0, averaged), and the
    smallest per-output variance (TheDeepChecker's constant-output check asks for exactly 0); and
    the largest |sum| of an output row (AUTOTRAINER layer_issue: past omega_2 + 0.1 = 1.1 the output
    is 'activation_output', an output that is not a probability vector)."""
    y = y.detach().float().reshape(y.shape[0], -1).cpu().numpy()
    stats = {"out_nonfinite": float(not np.isfinite(y).all()), "out_l1_max": float(np.abs(y).sum(1).max())}
    if y.shape[0] < 2:
        return stats
    var = y.var(0, dtype=np.float64)
    return {"out_spread": float(np.sqrt(var).mean()), "out_var_min": float(var.min()), **stats}


class Period:
    """TheDeepChecker's per-iteration buffers over one period of PERIOD optimizer steps, from a traced
    step on (its hooks read every iteration; a whole run's would cost a weight copy per step, so the
    trace keeps the period that starts at each traced step outside a period: at steps 0, 16, 32, 64...
    of a run traced at 0, 1, 2, 4, 8...). Per layer, at the period's end:
    - `upd_log_period`: the mean over the period of log10(mean |w_after - w_before| / mean |w_before|),
      a ratio of 0 counting as 0 and a step with mean |w_before| = 0 left out (hooks.py
      check_unstable_training); its checks compare this mean with -1 and -4, and 0 is 'w_untrained';
    - `g_absmean_last`, `w_absmean_last`: mean |g| and mean |w| at the period's last iteration;
    - `g_rate_min`, `g_rate_max`, `w_rate_min`: the smallest / largest of the RATE_WINDOW - 1 ratios of
      consecutive iterations ending there (check_vanishing_gradient: every ratio <= 0.5;
      check_exploding_gradient, check_divergence: every ratio >= 2)."""

    def __init__(self, step: int, layers: list[str]):
        self.step, self.iterations = step, 0
        self.logs: dict[str, list[float]] = {n: [] for n in layers}
        self.g: dict[str, list[float]] = {n: [] for n in layers}
        self.w: dict[str, list[float]] = {n: [] for n in layers}

    def add(self, weights: list[tuple[str, torch.Tensor]], before: list[torch.Tensor]) -> None:
        self.iterations += 1
        for (name, w), b in zip(weights, before):
            divider = float(b.abs().mean())
            if divider > 0:
                ratio = float((w.detach() - b).abs().mean()) / divider
                self.logs[name].append(math.log10(ratio) if ratio > 0 else 0.0)
            self.w[name].append(float(w.detach().abs().mean()))
            if w.grad is not None:
                self.g[name].append(float(w.grad.detach().abs().mean()))

    def done(self) -> bool:
        return self.iterations >= PERIOD

    def stats(self) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for name in self.logs:
            s: dict[str, float] = {}
            if self.logs[name]:
                s["upd_log_period"] = float(np.mean(self.logs[name]))
            for key, values in (("g", self.g[name]), ("w", self.w[name])):
                if len(values) < RATE_WINDOW:
                    continue
                last = np.asarray(values[-RATE_WINDOW:])
                s[f"{key}_absmean_last"] = float(last[-1])
                if not (np.isfinite(last).all() and (last[:-1] > 0).all()):
                    continue  # a rate from an exact 0 is undefined: stored as none, never as NaN (a NaN
                    # in the trace is the network's; 4 identity_filter runs have a layer whose |g| stays exactly 0)
                rates = last[1:] / last[:-1]
                s[f"{key}_rate_min"] = float(rates.min())
                if key == "g":
                    s["g_rate_max"] = float(rates.max())
            out[name] = s
        return out


@dataclass
class WatchedLayer:
    """One watched layer of an nn.Module: a conv/linear `module` and the activation after it, or an
    activation with no weighted layer before it (`module` None)."""

    name: str
    kind: str  # conv, linear, or none (an activation alone)
    activation: str = "none"  # the activation's name in the trace (ACTIVATIONS), none if no activation follows
    module: nn.Module | None = None  # the weighted module, whose weight, gradient and update are traced
    seen_as: str | None = None  # the name under which the activation's (input, output) is captured


def layer_kind(module: nn.Module) -> str | None:
    if isinstance(module, nn.modules.conv._ConvNd):
        return "conv"
    return "linear" if isinstance(module, nn.Linear) else None


class DefinitionOrder:
    """How the cases pair layers (Trace.watch's default): each conv/linear module with the activation
    module defined after it; an activation with none before it is a layer of its own. The other
    pairing, for arbitrary models, follows each layer's output at run time (recorder.FollowCalls)."""

    def layers(self, model: nn.Module) -> tuple[list[WatchedLayer], list[tuple[str, nn.Module]]]:
        """The watched layers, and the (name, module) pairs whose forward outputs are captured."""
        watched: list[WatchedLayer] = []
        captured: list[tuple[str, nn.Module]] = []
        current: WatchedLayer | None = None
        for name, module in model.named_modules():
            name = name or type(module).__name__.lower()  # a bare layer watched alone: "" is the scalars' row
            kind = layer_kind(module)
            activation = next((v for k, v in ACTIVATIONS.items() if isinstance(module, k)), None)
            if kind:
                current = WatchedLayer(name, kind, module=module)
                watched.append(current)
                captured.append((name, module))
            elif activation:
                if current is None or current.seen_as is not None:
                    current = WatchedLayer(name, "none", activation, seen_as=name)
                    watched.append(current)
                else:
                    current.activation, current.seen_as = activation, name
                captured.append((name, module))
        return watched, captured

    def hooks(self, trace: Trace, model: nn.Module) -> list:
        """Hooks of the pairing's own beyond the captures (none here)."""
        return []

    def on_capture(self):
        """A function called with (name, output) after each capture, or None."""
        return None


class Trace:
    """The recorder a RunContext carries. `seconds`: CPU seconds spent computing the trace."""

    def __init__(self, growth: float = GROWTH, enabled: bool = True, scalars: Mapping[str, str] | None = None):
        """`scalars`: which logged metric is the run's loss and which its accuracies (a case's
        `Case.scalars`; keys from contract.SCALARS), copied into the trace at each traced step."""
        unknown = set(scalars or {}) - set(SCALARS)
        if unknown:
            raise ValueError(f"unknown trace scalar(s) {sorted(unknown)}; choose from {SCALARS}")
        self.scalars = dict(scalars or {})
        self.growth = growth
        self.enabled = enabled  # False: records nothing (to measure what recording costs)
        self.rows: list[tuple[int, str, str, str, str, float]] = []
        self.seconds = 0.0
        self._next = 0
        self._traced: list[int] = []
        self.watched: list[WatchedLayer] = []  # in model order; a pairing may reorder them (recorder.FollowCalls)
        self._seen: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}  # name -> (input, output) captured
        self._handles: list = []
        self._targets: list[tuple[str, nn.Module]] = []  # the modules whose outputs are captured
        self._pairing = DefinitionOrder()
        self._armed_hooks: list = []
        self._forwards, self._arm_at = 0, 1  # armed for the first training forward
        self._model: nn.Module | None = None
        self._armed: int | None = None
        self._before: list[torch.Tensor] = []
        self._previous: dict[str, np.ndarray] = {}
        self._period: Period | None = None

    # -- when ---------------------------------------------------------------------------------
    def due(self, step: int) -> bool:
        return self.enabled and step >= self._next

    def _advance(self, step: int) -> None:
        self._next = max(step + 1, math.ceil(step * self.growth))
        self._traced.append(step)

    def _add(self, step: int, layer: str, kind: str, activation: str, stats: Mapping[str, float]) -> None:
        self.rows.extend((step, layer, kind, activation, k, float(v)) for k, v in stats.items())

    # -- explicit calls -----------------------------------------------------------------------
    def record(self, step: int, layers: list[Observed], output: torch.Tensor | None = None, **scalars: float) -> None:
        if not self.enabled:
            return
        start = time.process_time()
        with torch.no_grad():
            for obs in layers:
                stats: dict[str, float] = {}
                if obs.pre is not None:
                    out = obs.out if obs.out is not None else activate(obs.pre, obs.activation)
                    stats.update(activation_stats(obs.pre, out, obs.activation))
                if obs.weight is not None:
                    stats.update(weight_stats(obs.weight))
                    stats.update(self._unchanged(obs.name, obs.weight))
                if obs.grad is not None:
                    stats.update(grad_stats(obs.grad))
                if obs.update is not None and obs.weight is not None:
                    stats.update(update_stats(obs.weight - obs.update, obs.update))
                if obs.reg_grad is not None:
                    stats["reg_grad_norm"] = float(obs.reg_grad.detach().float().norm())
                self._add(step, obs.name, obs.kind, obs.activation, stats)
            if output is not None:
                self._add(step, "", "", "", output_stats(output))
        self._add(step, "", "", "", {k: v for k, v in scalars.items() if v is not None})
        self._advance(step)
        self.seconds += time.process_time() - start

    def _unchanged(self, name: str, w: torch.Tensor) -> dict[str, float]:
        """1.0 when the weight is numpy.allclose to the last traced one (SageMaker UnchangedTensor)."""
        now = _flat_numpy(w).copy()
        before = self._previous.get(name)
        self._previous[name] = now
        if before is None or before.shape != now.shape:
            return {}
        return {"w_unchanged": float(np.allclose(now, before, **SM_ALLCLOSE))}

    # -- hooks for nn.Module ------------------------------------------------------------------
    def watch(self, model: nn.Module, pairing=None) -> None:
        """The layers `pairing` finds (default DefinitionOrder, the cases' pairing); hooks keep
        references to the last training forward."""
        if not self.enabled:
            return
        self._model = model
        self._pairing = pairing or DefinitionOrder()
        self.watched, self._targets = self._pairing.layers(model)
        self._targets.append(("", model))
        self._handles.append(model.register_forward_pre_hook(self._count()))
        self._handles.append(register_optimizer_step_pre_hook(self._pre_step))
        self._handles.append(register_optimizer_step_post_hook(self._post_step))
        self._handles.extend(self._pairing.hooks(self, model))

    def _count(self):
        """The one hook on every forward: it counts training forwards and attaches the capturing
        hooks just before the forward of the next due step (a loop's log step is a fixed offset from
        its forward count), so the steps in between run with one hook, not one per layer."""

        def hook(module, args):
            if (
                torch.is_grad_enabled()
                and args
                and torch.is_tensor(args[0])
                and not torch._C._functorch.is_functorch_wrapped_tensor(args[0])
            ):
                self._forwards += 1
                if not self._armed_hooks and self._forwards >= self._arm_at:
                    self._armed_hooks = [m.register_forward_hook(self._keep(n)) for n, m in self._targets]

        return hook

    @property
    def capturing(self) -> bool:
        """Whether this forward is a traced one (its outputs are being captured)."""
        return bool(self._armed_hooks)

    def keep(self, name: str, pre: torch.Tensor, out: torch.Tensor) -> None:
        """A pairing's capture of an activation's input and output, found its own way."""
        self._seen[name] = (pre, out)

    def _disarm(self) -> None:
        for handle in self._armed_hooks:
            handle.remove()
        self._armed_hooks = []

    def _keep(self, name: str):
        seen = self._seen  # a closure, not a bound method: a deepcopy of the model shares it
        also = self._pairing.on_capture()

        def hook(module, args, output):
            if (
                torch.is_grad_enabled()
                and torch.is_tensor(output)
                and not torch._C._functorch.is_functorch_wrapped_tensor(output)
            ):
                seen[name] = (args[0], output)
                if also is not None:
                    also(name, output)

        return hook

    def on_log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Called by RunContext.log: the scalars of every logged step (the loss and accuracy rules read
        them at the tools' check cadence, an epoch), and the per-layer statistics of a due step of
        a watched model."""
        if not self.enabled:
            return
        if self._model is not None and self.due(step) and self._seen and step not in self._traced[-1:]:
            self._snapshot(step, metrics)
            self._disarm()
            self._arm_at = self._next + (self._forwards - step)  # the forward of the next due step
        else:
            self._add(step, "", "", "", self._scalars(metrics))

    def _scalars(self, metrics: Mapping[str, float]) -> dict[str, float]:
        return {stat: metrics[name] for stat, name in self.scalars.items() if name in metrics}

    def _snapshot(self, step: int, metrics: Mapping[str, float]) -> None:
        layers = []
        for layer in self.watched:
            pre = out = None
            if layer.seen_as is not None and layer.seen_as in self._seen:
                pre, out = self._seen[layer.seen_as]
            elif layer.module is not None and layer.name in self._seen:
                pre = out = self._seen[layer.name][1]
            weight = getattr(layer.module, "weight", None)
            layers.append(
                Observed(
                    layer.name,
                    layer.kind,
                    layer.activation,
                    pre=pre,
                    out=out,
                    weight=weight,
                    grad=None if weight is None else weight.grad,
                )
            )
        output = self._seen.get("", (None, None))[1]
        self._seen.clear()
        self.record(step, layers, output=output)
        self._add(step, "", "", "", self._scalars(metrics))
        self._armed = step

    def _weights(self) -> list[tuple[str, torch.Tensor]]:
        return [(layer.name, layer.module.weight) for layer in self.watched if layer.module is not None]

    def _layer(self, name: str) -> WatchedLayer:
        return next(layer for layer in self.watched if layer.name == name)

    def _owns(self, optimizer) -> bool:
        mine = {id(w) for _, w in self._weights()}
        return any(id(p) in mine for g in optimizer.param_groups for p in g["params"])

    def _pre_step(self, optimizer, args, kwargs) -> None:
        if (self._armed is not None or self._period is not None) and self._owns(optimizer):
            self._before = [w.detach().clone() for _, w in self._weights()]

    def _post_step(self, optimizer, args, kwargs) -> None:
        if not self._before or not self._owns(optimizer):
            return
        start = time.process_time()
        weights = self._weights()
        if self._armed is not None:
            for (name, w), before in zip(weights, self._before):
                layer = self._layer(name)
                self._add(self._armed, name, layer.kind, layer.activation, update_stats(before, w.detach() - before))
            if self._period is None:  # periods do not overlap: a traced step inside one starts none
                self._period = Period(self._armed, [name for name, _ in weights])
            self._armed = None
        self._period.add(weights, self._before)
        if self._period.done():
            for name, stats in self._period.stats().items():
                layer = self._layer(name)
                self._add(self._period.step, name, layer.kind, layer.activation, stats)
            self._period = None
        self._before = []
        self.seconds += time.process_time() - start

    # -- the end ------------------------------------------------------------------------------
    def diverged(self, step: int) -> None:
        """A divergence is part of the trace: the step at which a value stopped being finite."""
        self._add(step, "", "", "", {"nonfinite": 1.0})

    def close(self) -> None:
        self._disarm()
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._seen.clear()
        self._previous.clear()
        self._period = None  # a period cut short by the run's end is never judged, as in the tool

    def frame(self):
        """The tidy trace; its last step also carries `trace_seconds`, what recording it cost."""
        import pandas as pd

        last = max((r[0] for r in self.rows), default=None)
        rows = self.rows + ([(last, "", "", "", "trace_seconds", self.seconds)] if self.rows else [])
        return pd.DataFrame(rows, columns=["step", "layer", "kind", "activation", "stat", "value"])
