"""The case contract: what a case declares, as plain frozen data.

A case is a faithful baseline config, named candidate fixes that each change one thing, a symptom
computed from final metrics, and expectations (which variants show the symptom, over seeds, where).
The harness owns everything around the case's training loop (harness/README.md); cases/README.md
describes the contract from a case's side and how to add one.
"""

from __future__ import annotations

import dataclasses
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BASELINE = "baseline"

# Verdicts a grid point can get, in this order of precedence: "diverged" (NaN/inf) is an outcome
# of its own, never a crash; "symptom" is the case's failure; "cured" is no symptom *and* the case's
# task done (Case.task, from its post); "unlearned" is neither: the failure's measure is gone but the
# network does not do the task (a clipped step that never classifies, a map 99% black). An
# unlearned run is never counted as a cure: not by check, the reports, compare or the detectors.
SYMPTOM, CURED, UNLEARNED, DIVERGED = "symptom", "cured", "unlearned", "diverged"
VERDICTS = (SYMPTOM, CURED, UNLEARNED, DIVERGED)

# The failure a case reproduces, from a fixed vocabulary: the ground truth the diagnosis rules of
# harness/detectors are scored against (a rule's alarm of the case's class is a right diagnosis).
DEAD_RELU, SATURATION, VANISHING_GRADIENT = "dead_relu", "saturation", "vanishing_gradient"
EXPLODING, CONSTANT_OUTPUT, SLOW_CONVERGENCE = "exploding/divergence", "constant_output", "slow_convergence"
OBJECTIVE_MISMATCH = (
    "objective_mismatch"  # the loss's optimum is the failure (a blur): no optimisation rule should see it
)
FAILURE_CLASSES = (
    DEAD_RELU,
    SATURATION,
    VANISHING_GRADIENT,
    EXPLODING,
    CONSTANT_OUTPUT,
    SLOW_CONVERGENCE,
    OBJECTIVE_MISMATCH,
)

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
}


@dataclass(frozen=True)
class Fix:
    """A candidate cure: one change to the baseline config and why it should work.

    A deliberate combination of fixes is its own Fix whose `combines` names its parts; its change
    must be exactly the union of theirs (the contract tests check it).
    """

    name: str
    change: Mapping[str, Any]
    why: str
    combines: tuple[str, ...] = ()
    # The axis values it runs at, where its change makes an axis moot (an optimiser with its own
    # rate ignores the SGD rate axis: running both values would run the same points twice).
    axes: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Threshold:
    """`metric op value`, with the reason for the value (the post, or the physics)."""

    metric: str
    op: str
    value: float
    why: str

    def __post_init__(self) -> None:
        if self.op not in _OPS:
            raise ValueError(f"threshold op {self.op!r} is not one of {sorted(_OPS)}")

    def holds(self, metrics: Mapping[str, float]) -> bool:
        value = metrics.get(self.metric, math.nan)
        return not math.isnan(value) and _OPS[self.op](value, self.value)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


@dataclass(frozen=True)
class Criterion:
    """A description and thresholds that all hold, or not, on a run's final metrics."""

    description: str
    all_of: tuple[Threshold, ...]

    def holds(self, metrics: Mapping[str, float]) -> bool:
        return all(t.holds(metrics) for t in self.all_of)


class Symptom(Criterion):
    """The failure, measured: present when every threshold holds on a run's final metrics."""

    present = Criterion.holds


class Task(Criterion):
    """What doing the case's task means, from its post (classifies both images; fills the hole better
    than a flat colour): done when every threshold holds on a run's final metrics."""

    done = Criterion.holds


@dataclass(frozen=True)
class Expectation:
    """What a variant must show, on at least `min_share` of its seeds, at the grid points `where`.

    `shows` is a verdict (symptom / cured / unlearned / diverged), or a tuple of them where what is
    measured is "not cured" rather than one verdict (the map dies on most seeds, nearly dies on the
    rest, and the classifier never learns: `(SYMPTOM, UNLEARNED)`). `also` adds
    thresholds every matching seed must meet too (a cure that removes the dead map must also
    classify). `profiles` names the budgets it was measured on, with no default, so a claim about
    the full budget is never made by omission (an adversarial cure may need the full budget; a
    quick finding may fade at 10x).
    """

    variant: str
    shows: str | tuple[str, ...]
    why: str
    # A claim is sized to its pooled evidence (harness/evidence.py): a tenth of the seeds that a
    # fresh run fails with at most the suite's 5% split evenly over its claims (quick: 63 claims,
    # 0.079% each). On 50 seeds that all match, ">= 70% of 10" fails 0.012% of fresh runs,
    # ">= 80%" 0.115%, ">= 90%" 1.0%: 0.7 is what unanimous 50-seed evidence carries. A claim on
    # weaker evidence states its own, smaller share.
    min_share: float = 0.7
    where: Mapping[str, Any] = field(default_factory=dict)
    also: tuple[Threshold, ...] = ()
    profiles: tuple[str, ...] = field(kw_only=True)

    def __post_init__(self) -> None:
        shows = (self.shows,) if isinstance(self.shows, str) else tuple(self.shows)
        if not shows or any(v not in VERDICTS for v in shows):
            raise ValueError(f"expectation shows={self.shows!r} must name verdicts from {VERDICTS}")
        object.__setattr__(self, "shows", shows)  # normalised once, so readers see one form
        if isinstance(self.profiles, str) or not self.profiles:
            raise ValueError(
                f"expectation for {self.variant!r}: profiles must name the profiles it was "
                f"measured on, as a tuple, got {self.profiles!r}"
            )
        if not 0.0 < self.min_share <= 1.0:
            raise ValueError(f"min_share must be in (0, 1], got {self.min_share}")

    def where_text(self) -> str:
        """The grid points it judges, as `check` and the tables print them: `hidden_layers=3, lr=0.5`, or `all`."""
        return ", ".join(f"{k}={v}" for k, v in self.where.items()) or "all"

    def describe(self) -> str:
        text = f"{' or '.join(self.shows)} on >= {self.min_share:.0%} of seeds"
        if self.also:
            text += " with " + ", ".join(str(t) for t in self.also)
        return text


@dataclass(frozen=True)
class Profile:
    """A budget: how many seeds, and which config fields (steps, data size) it overrides.

    A profile never changes the meaning of a variant, only how long and on how much it runs.
    """

    seeds: int
    budget: Mapping[str, Any] = field(default_factory=dict)
    # The axis values this profile runs, where fewer than the case declares (a cheaper quick grid
    # that leaves its slowest axis point to full); an axis not named runs all its values.
    axes: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    # A larger budget for one variant, where its claim needs more steps than the rest (a cure that
    # needs 800 steps, judged by the profile `make all` runs); applied after `budget`.
    variant_budget: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # An exploration: config fields the post leaves open (a reading of its words, a rate it never
    # tried; a declared axis's field takes the explored values instead), each value a grid axis of
    # its own, run on the variants named below: the baseline first, and a fix only where it explores
    # fields the fix does not set (a fix's meaning never shifts under an exploration). Its snapshot
    # holds the exploration tables a case README renders, and its expectations make the answers
    # checked claims.
    explores: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    # The variants this profile runs; () runs every variant.
    variants: tuple[str, ...] = ()


# The scalars a trace carries and the diagnosis rules read (the loss, the training and the held-out
# accuracy): a case names which of its logged metrics each one is (`Case.scalars`).
SCALARS = ("loss", "train_accuracy", "val_accuracy")


@dataclass(frozen=True)
class Case:
    """One documented failure. `train(config, run)` owns the loop and returns final metrics."""

    title: str
    post: str  # the public post it reproduces: site, title, author and date where public, id or URL
    baseline: Any  # a frozen dataclass instance whose defaults are the post's setup
    train: Callable[[Any, Any], Mapping[str, float]]
    symptom: Symptom
    task: Task  # what a cure must also do, from the post: no symptom without it is "unlearned"
    fixes: tuple[Fix, ...]
    expectations: tuple[Expectation, ...]
    profiles: Mapping[str, Profile]
    axes: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    key_metrics: tuple[str, ...] = ()  # the step metrics a report plots first
    # The images (logged with run.image) its report shows side by side per variant, and the axis
    # point they are taken at (e.g. depth=3): the only per-case input of the report template.
    pictures: tuple[str, ...] = ()
    picture_where: Mapping[str, Any] = field(default_factory=dict)
    # Two final metrics that pull against each other (PSNR against sharpness: perception against
    # distortion), drawn one against the other, one dot per run; () draws nothing.
    tradeoff: tuple[str, ...] = ()
    # The smallest budget that runs every line of the loop: the contract tests use it.
    smoke_budget: Mapping[str, Any] = field(default_factory=dict)
    # The failure class it reproduces (FAILURE_CLASSES): what `failbench detect` scores rules against.
    failure_class: str = ""
    # The post's failure for the post's reason, measured on a run's final metrics, where the symptom
    # alone does not say it (a face filter below the hand-set kernel may be halted, or a slow start):
    # a run with the symptom but not this is sick for another reason, and `failbench detect` counts
    # no diagnosis of it right or wrong. None: every run with the symptom has the case's failure.
    mechanism: Criterion | None = None
    # Which logged step metric is the run's loss and which its accuracies (keys from SCALARS): what
    # the trace records as its scalars and the diagnosis rules read. A rule that needs one the case
    # does not declare abstains, so a case declares every one it logs.
    scalars: Mapping[str, str] = field(default_factory=dict)
    # Set by discovery from the folder the case lives in, never written by hand.
    name: str = ""
    folder: Path | None = None

    def __post_init__(self) -> None:
        if not dataclasses.is_dataclass(self.baseline) or not self.baseline.__dataclass_params__.frozen:
            raise TypeError("Case.baseline must be a frozen dataclass instance")
        if self.tradeoff and len(self.tradeoff) != 2:
            raise TypeError("Case.tradeoff names two final metrics (x, y), or none")
        if set(self.scalars) - set(SCALARS):
            raise ValueError(f"Case.scalars keys must be among {SCALARS}, got {sorted(self.scalars)}")
        if self.failure_class and self.failure_class not in FAILURE_CLASSES:
            raise ValueError(f"failure_class {self.failure_class!r} is not one of {FAILURE_CLASSES}")

    @property
    def variants(self) -> tuple[str, ...]:
        return (BASELINE,) + tuple(f.name for f in self.fixes)

    def fix(self, name: str) -> Fix | None:
        return next((f for f in self.fixes if f.name == name), None)

    def config(
        self,
        variant: str,
        axes: Mapping[str, Any] | None = None,
        profile: str | None = None,
        overrides: Mapping[str, Any] | None = None,
    ) -> Any:
        """The config of a grid point: baseline, then the fix's change, the axes, the budget, and
        a user's explicit overrides (`failbench run --set`).

        `dataclasses.replace` raises on an unknown key, so a typo in a fix cannot pass silently.
        """
        if variant != BASELINE and self.fix(variant) is None:
            raise KeyError(variant)
        change = dict(self.fix(variant).change) if variant != BASELINE else {}
        change.update(axes or {})
        if profile is not None:
            change.update(self.profiles[profile].budget)
            change.update(self.profiles[profile].variant_budget.get(variant, {}))
        change.update(overrides or {})
        return dataclasses.replace(self.baseline, **change)

    def diagnosis_class(self, verdict: str, metrics: Mapping[str, float]) -> str | None:
        """What a right diagnosis of a run names: divergence for a diverged run (a non-finite value
        is its own failure, whatever the case), the case's class for a run with its symptom (and
        its mechanism, where stated); None for a cured or unlearned run and for a symptom that
        comes from another reason."""
        if verdict == DIVERGED:
            return EXPLODING
        if verdict != SYMPTOM:
            return None
        if self.mechanism is not None and not self.mechanism.holds(metrics):
            return None
        return self.failure_class or None

    def verdict(self, metrics: Mapping[str, float], diverged: bool) -> str:
        if diverged:
            return DIVERGED
        if self.symptom.present(metrics):
            return SYMPTOM
        return CURED if self.task.done(metrics) else UNLEARNED
