"""Ordinary PyTorch trainings from outside the suite, failing and healthy: what `failbench diagnose`
is scored on, never fitted or tuned on.

Each is a loop as a user writes it (no harness: a model, an optimizer, a batch loop, `failbench.watch`
and `rec.log`), on scikit-learn's 8x8 digits, on architectures and optimizers none of the suite's
cases uses: MLPs (ReLU, tanh, sigmoid), small CNNs with and without BatchNorm, a residual net; SGD,
SGD with momentum, Adam. Each failure is a mistake users report: a rate too large or too small, an
init too large or too small, unscaled pixels, no `optimizer.zero_grad()`, a weight decay that
swallows the signal, a hand-written log of a softmax.

A run's label is not what its loop was meant to show but what it measurably ends in, read from the
model itself on the 397 held-out digits, with thresholds that are definitions, not fits (`label`);
a unit is active where its slope is >= 1% of its peak, flat where it is below:

| label | measured cause |
| --- | --- |
| exploding/divergence | the loss stopped being finite (`first_nonfinite_step`) |
| dead_relu | >= half a hidden ReLU (or ELU) layer's units active on < 1% of the digits (`dead_share`) |
| saturation | >= half a hidden tanh/sigmoid layer's (digit, unit) pairs flat (`flat_share`) |
| constant_output | the output's spread across digits <= 1% of its spread at the start (`spread_ratio`) |
| slow_convergence | the loss still >= 90% of its first (`loss_ratio`), none of the above |
| none | held-out accuracy >= 80% (`accuracy`) |

Two sets: the first 24 loops (`FIRST`) were committed before any rule changed and scored before and
after; the second 23 (`SECOND`: RMSprop, Adagrad, AdamW, GELU, SiLU) were written and labelled after
the rules' last change, committed, then scored once. Neither is fitted or tuned on.

A failing run must also fail the task (held-out accuracy <= 50%; a divergence fails it by being
non-finite); a run that neither learns nor shows a cause is "unexplained" and is not scored. The
labels and measurements are committed in external_labels.json, and tests/test_external.py checks
that each loop still ends as labelled.

    python -m tests.external_runs            # train all, print each set's score table (--write: the labels)
"""

from __future__ import annotations

import json
import math
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import failbench
from failbench.datasets import digits

LABELS = Path(__file__).resolve().parent / "external_labels.json"
STEPS, BATCH, EVERY = 300, 64, 10
# Definitions of each measured cause (module docstring); 1% and one half as the suite's own rules and
# cases define a dead unit, a flat unit and a constant output.
DEAD_ACTIVE, FLAT_SLOPE, HALF, CONSTANT, PLATEAU = 0.01, 0.01, 0.5, 0.01, 0.9
LEARNED, FAILED = 0.8, 0.5


# -- models ----------------------------------------------------------------------------------------
def mlp(widths: list[int], act: Callable[[], nn.Module], std: float | None = None) -> nn.Sequential:
    """64 pixels -> widths -> 10, `act` after each hidden layer; `std`: weights drawn N(0, std^2),
    biases 0 (the user's own init), else PyTorch's default."""
    layers: list[nn.Module] = [nn.Flatten()]
    sizes = [64, *widths]
    for a, b in zip(sizes, sizes[1:]):
        layers += [nn.Linear(a, b), act()]
    layers.append(nn.Linear(sizes[-1], 10))
    model = nn.Sequential(*layers)
    if std is not None:
        for m in model:
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, std)
                nn.init.zeros_(m.bias)
    return model


class CNN(nn.Module):
    """conv 8 -> pool -> conv 16 -> pool -> linear, functional activations, optional BatchNorm."""

    def __init__(self, batchnorm: bool = False, act: Callable = F.relu, scale: float = 1.0):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8) if batchnorm else nn.Identity()
        self.bn2 = nn.BatchNorm2d(16) if batchnorm else nn.Identity()
        self.fc = nn.Linear(16 * 2 * 2, 10)
        self.act = act
        with torch.no_grad():
            for conv in (self.conv1, self.conv2):
                conv.weight.mul_(scale)

    def forward(self, x):
        x = F.max_pool2d(self.act(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(self.act(self.bn2(self.conv2(x))), 2)
        return self.fc(x.flatten(1))


class Block(nn.Module):
    def __init__(self, channels: int, batchnorm: bool):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels) if batchnorm else nn.Identity()
        self.bn2 = nn.BatchNorm2d(channels) if batchnorm else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + x)


class ResNet(nn.Module):
    """stem conv 16 + two residual blocks (one nn.ReLU reused in each) + global average pool."""

    def __init__(self, batchnorm: bool = True):
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16) if batchnorm else nn.Identity()
        self.blocks = nn.Sequential(Block(16, batchnorm), Block(16, batchnorm))
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = self.blocks(torch.relu(self.bn(self.stem(x))))
        return self.head(x.mean(dim=(2, 3)))


# -- the loops -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Training:
    model: Callable[[], nn.Module]
    optimizer: Callable[[list], torch.optim.Optimizer]
    what: str  # the mistake (or none), as a user would say it
    pixels: float = 16.0  # the loop divides the 0..16 pixels by this (1.0: unscaled)
    zero_grad: bool = True
    handwritten_log_softmax: bool = False
    summed_loss: bool = False  # the batch's losses summed, not averaged
    scaler_init: float | None = None  # a GradScaler's first scale: 2**127 overflows the first steps' float32 grads
    steps: int = STEPS
    extra: dict = field(default_factory=dict)


def sgd(lr, momentum=0.0, weight_decay=0.0):
    return lambda p: torch.optim.SGD(p, lr=lr, momentum=momentum, weight_decay=weight_decay)


def adam(lr, weight_decay=0.0):
    return lambda p: torch.optim.Adam(p, lr=lr, weight_decay=weight_decay)


def rmsprop(lr):
    return lambda p: torch.optim.RMSprop(p, lr=lr)


def adagrad(lr):
    return lambda p: torch.optim.Adagrad(p, lr=lr)


def adamw(lr, weight_decay):
    return lambda p: torch.optim.AdamW(p, lr=lr, weight_decay=weight_decay)


def with_bias(model: nn.Module, value: float) -> nn.Module:
    """Every Linear's bias set to `value` (a user's own init)."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.constant_(m.bias, value)
    return model


TRAININGS: dict[str, Training] = {
    # learns
    "mlp_relu_momentum": Training(lambda: mlp([128, 64], nn.ReLU), sgd(0.05, 0.9), "none"),
    "mlp_tanh_adam": Training(lambda: mlp([128, 64], nn.Tanh), adam(1e-3), "none"),
    "mlp_sigmoid_sgd": Training(lambda: mlp([64], nn.Sigmoid), sgd(0.5), "none"),
    "cnn_adam": Training(CNN, adam(3e-3), "none"),
    "cnn_leaky_sgd": Training(lambda: CNN(act=F.leaky_relu), sgd(0.5), "none"),
    "cnn_tanh_large_init": Training(
        lambda: CNN(act=torch.tanh, scale=8.0), sgd(0.05, 0.9), "none; tanh filters 8x PyTorch's init"
    ),
    "cnn_bn_momentum": Training(lambda: CNN(batchnorm=True), sgd(0.05, 0.9), "none"),
    "resnet_bn_adam": Training(ResNet, adam(3e-3), "none"),
    "cnn_grad_scaler": Training(
        CNN,
        adam(3e-3),
        "none; a GradScaler (first scale 2^127, a summed loss) skips 4 steps on inf gradients",
        summed_loss=True,
        scaler_init=2.0**127,
    ),
    # fails
    "mlp_relu_unscaled_lr": Training(
        lambda: mlp([128, 64], nn.ReLU), sgd(0.5), "unscaled pixels (0..16), SGD at 0.5", pixels=1.0
    ),
    "cnn_adam_large_lr": Training(CNN, adam(0.1), "Adam at 0.1"),
    "cnn_no_zero_grad": Training(
        CNN, sgd(0.01), "no optimizer.zero_grad(): the gradients add up", zero_grad=False, steps=600
    ),
    "resnet_no_bn_momentum": Training(
        lambda: ResNet(batchnorm=False), sgd(0.1, 0.9), "residual net without BatchNorm, SGD 0.1 momentum 0.9"
    ),
    "mlp_sigmoid_std3": Training(
        lambda: mlp([128, 128], nn.Sigmoid, std=3.0), sgd(0.01), "sigmoid layers initialised at std 3"
    ),
    "mlp_tanh_unscaled_std1": Training(
        lambda: mlp([128, 128, 128], nn.Tanh, std=1.0),
        sgd(0.01),
        "unscaled pixels into tanh layers at std 1",
        pixels=1.0,
    ),
    "mlp_tanh_weight_decay": Training(
        lambda: mlp([128, 64], nn.Tanh), sgd(0.1, weight_decay=1.0), "SGD weight decay 1.0"
    ),
    "cnn_bn_adam_decay": Training(lambda: CNN(batchnorm=True), adam(1e-2, weight_decay=5.0), "Adam weight decay 5"),
    "cnn_elu_large_lr": Training(lambda: CNN(act=F.elu), sgd(1.0), "ELU CNN, SGD at 1"),
    "mlp_lr_1e-5": Training(lambda: mlp([128, 64], nn.ReLU), sgd(1e-5), "SGD at 1e-5"),
    "deep_tanh_tiny_init": Training(
        lambda: mlp([64] * 6, nn.Tanh, std=0.01), sgd(0.01, 0.9), "six tanh layers initialised at std 0.01"
    ),
    "resnet_adam_1e-6": Training(ResNet, adam(1e-6), "Adam at 1e-6"),
    "mlp_leaky_lr_10": Training(lambda: mlp([128, 64], nn.LeakyReLU), sgd(10.0), "SGD at 10"),
    "mlp_handwritten_log_softmax": Training(
        lambda: mlp([128, 64], nn.ReLU),
        sgd(1.0),
        "-(onehot * log(softmax)).sum() at SGD 1",
        handwritten_log_softmax=True,
    ),
    "cnn_leaky_momentum_lr": Training(lambda: CNN(act=F.leaky_relu), sgd(1.0, 0.9), "SGD at 1, momentum 0.9"),
}

# A second set, written and labelled after the rules above were last changed, and scored once then:
# other optimizers (RMSprop, Adagrad, AdamW) and activations (GELU), the same measured labels.
SECOND: dict[str, Training] = {
    # learns
    "mlp_gelu_adamw": Training(lambda: mlp([128, 64], nn.GELU), adamw(1e-3, 0.01), "none"),
    "cnn_rmsprop": Training(CNN, rmsprop(1e-3), "none"),
    "mlp_tanh_adagrad": Training(lambda: mlp([128], nn.Tanh), adagrad(0.05), "none"),
    "cnn_bn_rmsprop": Training(lambda: CNN(batchnorm=True), rmsprop(1e-3), "none"),
    "mlp_silu_momentum": Training(lambda: mlp([128, 64], nn.SiLU), sgd(0.05, 0.9), "none"),
    # fails
    "resnet_no_bn_sgd": Training(
        lambda: ResNet(batchnorm=False), sgd(0.02, 0.9), "residual net without BatchNorm, SGD 0.02, momentum 0.9"
    ),
    "mlp_relu_negative_bias": Training(
        lambda: with_bias(mlp([128, 64], nn.ReLU), -2.0), sgd(0.1), "ReLU biases initialised at -2"
    ),
    "cnn_rmsprop_large_lr": Training(CNN, rmsprop(0.2), "RMSprop at 0.2"),
    "mlp_sigmoid_unscaled_deep": Training(
        lambda: mlp([128, 128, 128], nn.Sigmoid), sgd(0.1), "unscaled pixels into three sigmoid layers", pixels=1.0
    ),
    "mlp_relu_adamw_decay": Training(lambda: mlp([128, 64], nn.ReLU), adamw(1e-3, 100.0), "AdamW weight decay 100"),
    "cnn_sgd_decay": Training(CNN, sgd(0.1, weight_decay=2.0), "SGD weight decay 2"),
    "cnn_rmsprop_1e-6": Training(CNN, rmsprop(1e-6), "RMSprop at 1e-6"),
    "mlp_adagrad_1e-4": Training(lambda: mlp([128, 64], nn.ReLU), adagrad(1e-4), "Adagrad at 1e-4"),
    "resnet_no_bn_lr_2": Training(
        lambda: ResNet(batchnorm=False), sgd(2.0), "residual net without BatchNorm, SGD at 2"
    ),
    "mlp_relu_adam_lr_10": Training(lambda: mlp([128, 64], nn.ReLU), adam(10.0), "Adam at 10"),
    "resnet_bn_sgd_lr_50": Training(ResNet, sgd(50.0), "SGD at 50"),
    "mlp_gelu_sgd_lr_100": Training(lambda: mlp([128, 64], nn.GELU), sgd(100.0), "SGD at 100"),
    "cnn_elu_adam_lr_5": Training(lambda: CNN(act=F.elu), adam(5.0), "ELU CNN, Adam at 5"),
    "mlp_silu_momentum_lr_10": Training(lambda: mlp([128, 64], nn.SiLU), sgd(10.0, 0.9), "SGD at 10, momentum 0.9"),
    "mlp_leaky_summed_loss": Training(
        lambda: mlp([128, 64], nn.LeakyReLU),
        sgd(0.5),
        "the batch's losses summed, not averaged, SGD 0.5",
        summed_loss=True,
    ),
    "cnn_handwritten_log_softmax_adam": Training(
        CNN, adam(0.01), "log(softmax(x)) written by hand, Adam at 0.01", handwritten_log_softmax=True, steps=600
    ),
    "cnn_summed_loss_momentum": Training(
        CNN, sgd(0.05, 0.9), "the batch's losses summed, not averaged, SGD 0.05 momentum 0.9", summed_loss=True
    ),
    "mlp_tanh_momentum_lr": Training(lambda: mlp([128, 64], nn.Tanh), sgd(5.0, 0.99), "SGD at 5, momentum 0.99"),
}
FIRST = tuple(TRAININGS)
TRAININGS.update(SECOND)


def _loss(training: Training, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    if training.handwritten_log_softmax:
        return -(F.one_hot(y, 10) * torch.log(torch.softmax(out, dim=1))).sum(dim=1).mean()
    return F.cross_entropy(out, y, reduction="sum" if training.summed_loss else "mean")


def train(name: str, seed: int = 0, record: bool = True, warn: bool = False):
    """One training; returns (the trace or None, measurements of the model at its end). With `warn`,
    watched with `warn=True` (its FailureWarnings silenced here): what was warned at which step is
    in the trace's `attrs["warned"]`."""
    training = TRAININGS[name]
    torch.manual_seed(seed)
    train_x, train_y, test_x, test_y = digits(torch.device("cpu"))
    x, tx = (train_x / training.pixels).unsqueeze(1), (test_x / training.pixels).unsqueeze(1)
    model = training.model()
    opt = training.optimizer(model.parameters())
    scaler = torch.amp.GradScaler("cpu", init_scale=training.scaler_init) if training.scaler_init else None
    rec = failbench.watch(model, opt, warn=warn) if record else None
    first_spread = _spread(model, tx)
    picker = torch.Generator().manual_seed(seed)
    losses, first_nonfinite = [], None
    with warnings.catch_warnings():  # what was warned is returned, not printed 24 times
        warnings.simplefilter("ignore", failbench.FailureWarning)
        for step in range(training.steps + 1):
            idx = torch.randint(0, len(x), (BATCH,), generator=picker)
            model.train()
            out = model(x[idx])
            loss = _loss(training, out, train_y[idx])
            if training.zero_grad:
                opt.zero_grad()
            if scaler is None:
                loss.backward()
                opt.step()
            else:
                scaler.scale(loss).backward()
                scaler.step(opt)
                scaler.update()
            value = float(loss.detach()) / (BATCH if training.summed_loss else 1)
            losses.append(value)
            if first_nonfinite is None and not math.isfinite(value):
                first_nonfinite = step
            if step % EVERY == 0 and rec is not None:
                accuracy = float((out.argmax(1) == train_y[idx]).float().mean())
                rec.log(step, loss=value, accuracy=accuracy)
            if first_nonfinite is not None and step >= first_nonfinite + 2 * EVERY:
                break  # a user's loop stops soon after the NaN, as the suite's do
    if rec is not None:
        rec.close()
    measured = measure(model, tx, test_y, first_spread, losses, first_nonfinite)
    if rec is None:
        return None, measured
    frame = rec.frame()
    frame.attrs["warned"] = dict(rec.on_traced.warned) if warn else {}
    return frame, measured


def _spread(model: nn.Module, x: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        return float(model(x).std(dim=0).mean())


def measure(model, tx, ty, first_spread, losses, first_nonfinite) -> dict:
    """The model's end read on the held-out digits: accuracy, output spread, dead and flat shares."""
    model.eval()
    found: dict[str, tuple[str, torch.Tensor]] = {}

    class Seen(torch.overrides.TorchFunctionMode):
        """Each activation call's output, ReLU-family or saturating, module or functional."""

        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            kind = {F.relu: "relu", torch.relu: "relu", F.elu: "elu", torch.tanh: "tanh", torch.sigmoid: "sigmoid"}.get(
                func
            )
            if kind:
                found[f"{len(found)}"] = (kind, out.detach())
            return out

    with torch.no_grad(), Seen():
        out = model(tx)
    dead, flat = 0.0, 0.0
    for kind, act in list(found.values()):
        per_unit = act.transpose(0, 1).reshape(act.shape[1], -1) if act.dim() > 2 else act.T  # unit x samples
        if kind in ("relu", "elu"):
            # active: slope >= 1% of peak; an ELU's slope below 0 is its output + 1
            active = per_unit > 0 if kind == "relu" else per_unit + 1 >= FLAT_SLOPE
            dead = max(dead, float((active.float().mean(dim=1) < DEAD_ACTIVE).float().mean()))
        else:
            slope = act * (1 - act) / 0.25 if kind == "sigmoid" else 1 - act**2
            flat = max(flat, float((slope < FLAT_SLOPE).float().mean()))
    finite = bool(torch.isfinite(out).all())
    spread = float(out.std(dim=0).mean()) if finite else math.nan
    first_loss = losses[0]
    tail = [v for v in losses[-EVERY:] if math.isfinite(v)]
    return {
        "accuracy": float((out.argmax(1) == ty).float().mean()) if finite else math.nan,
        "first_nonfinite_step": first_nonfinite,
        "dead_share": dead,
        "flat_share": flat,
        "spread_ratio": spread / first_spread if first_spread > 0 else math.nan,
        "loss_ratio": (sum(tail) / len(tail)) / first_loss if tail and first_loss > 0 else math.nan,
    }


def label(m: dict) -> str:
    """The failure a run measurably ends in (module docstring), or "none", or "unexplained"."""
    if m["first_nonfinite_step"] is not None:
        return "exploding/divergence"
    if m["accuracy"] >= LEARNED:
        return "none"
    if m["accuracy"] > FAILED:
        return "unexplained"  # neither learned nor failed the task
    if m["dead_share"] >= HALF:
        return "dead_relu"
    if m["flat_share"] >= HALF:
        return "saturation"
    if m["spread_ratio"] <= CONSTANT:
        return "constant_output"
    if m["loss_ratio"] >= PLATEAU:
        return "slow_convergence"
    return "unexplained"


def named(frame) -> str:
    """What `failbench diagnose` names first on a trace ("none" when nothing): its own rules' first
    finding, without the published tools `diagnose` also runs."""
    from failbench.detectors import own
    from failbench.trace_reader import View

    found = own.diagnose(View(frame))
    return found[0].mechanism if found else "none"


def main(argv: list[str]) -> int:
    from failbench.watching import warning_scores

    write = "--write" in argv
    rows, warned = {}, {}
    for name, training in TRAININGS.items():
        frame, measured = train(name, warn=True)
        said, first = named(frame), min(frame.attrs["warned"].items(), key=lambda kv: kv[1], default=(None, None))
        rows[name] = {"what": training.what, "label": label(measured), "named": said, "warned": first, **measured}
        verdict = "healthy" if rows[name]["label"] == "none" else "symptom"
        last = int(frame["step"].max())
        warned[name] = {
            "verdict": verdict,
            "end_verdict": said,
            "warned": first[0],
            "warned_at": first[1],
            "last_step": last,
            "planned_steps": training.steps,
        }
        print(f"{name}: {rows[name]}", file=sys.stderr)
    if write:
        keep = ("what", "label", "accuracy", "first_nonfinite_step", "dead_share", "flat_share", "spread_ratio")
        labels = {n: {k: r[k] for k in (*keep, "loss_ratio")} for n, r in rows.items()}
        LABELS.write_text(json.dumps(labels, indent=1, sort_keys=True) + "\n")
    for title, names in (("first set", FIRST), ("second set", tuple(SECOND))):
        print(f"{title}: {score(rows, names)}")
        print(score_table({n: rows[n] for n in names}))
        scored = [
            {**w, "warned_at": w["warned_at"] if w["warned"] else math.nan} for n, w in warned.items() if n in names
        ]
        print("warning:", warning_scores(scored), end="\n\n")
    return 0


def score(rows: dict, names) -> dict:
    """Over `names`: failing runs named right, "none", another class; healthy runs alarmed."""
    failing = [rows[n] for n in names if rows[n]["label"] not in ("none", "unexplained")]
    healthy = [rows[n] for n in names if rows[n]["label"] == "none"]
    return {
        "failing": len(failing),
        "right": sum(r["named"] == r["label"] for r in failing),
        "none": sum(r["named"] == "none" for r in failing),
        "another class": sum(r["named"] not in (r["label"], "none") for r in failing),
        "healthy": len(healthy),
        "alarmed": sum(r["named"] != "none" for r in healthy),
    }


def score_table(rows: dict) -> str:
    lines = [
        "| training | mistake | measured label | failbench names | right | first warning (step) |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        right = "yes" if r["named"] == r["label"] else "no"
        mechanism, step = r["warned"]
        warned = f"{mechanism} ({step})" if mechanism else "-"
        lines.append(f"| {name} | {r['what']} | {r['label']} | {r['named']} | {right} | {warned} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
