"""The published symptom rules of training-diagnosis tools, one module per tool, each rule a pure
function of a trace (harness/trace.py) returning a Finding: fired at a step, quiet, or abstained.

A rule abstains when the trace lacks the signal it reads (no validation accuracy, no ReLU layer):
that is scored as an abstention, never as quiet. Checks run at the trace's points, which stand
for the tools' checks (an epoch end, a period of iterations); the windows the tools count in checks
(DeepDiagnosis' 5, TheDeepChecker's 5) are counted in trace points.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from harness.contract import CONSTANT_OUTPUT, DEAD_RELU, EXPLODING, SATURATION, SLOW_CONVERGENCE, VANISHING_GRADIENT

__all__ = [
    "Finding",
    "Rule",
    "Tool",
    "View",
    "tools",
    "CONSTANT_OUTPUT",
    "DEAD_RELU",
    "EXPLODING",
    "SATURATION",
    "SLOW_CONVERGENCE",
    "VANISHING_GRADIENT",
]


@dataclass(frozen=True)
class Finding:
    fired: bool | None  # None: abstained (the trace lacks the signal)
    step: int | None = None  # the first traced step at which it fired
    why: str = ""


def fire(step, why: str = "") -> Finding:
    return Finding(True, int(step), why)


QUIET = Finding(False)


def abstain(why: str) -> Finding:
    return Finding(None, None, why)


@dataclass(frozen=True)
class Rule:
    name: str  # as the tool names it
    failure_class: str  # the failure it names: one of contract.FAILURE_CLASSES, or its own label
    check: Callable[[View], Finding]
    source: str  # file or page, where its thresholds are published


@dataclass(frozen=True)
class Tool:
    name: str
    rules: tuple[Rule, ...]
    # What the tool reports, its diagnosis: "all", every rule that fires over the run (TheDeepChecker
    # and SageMaker Debugger run each rule on its own); "first_check", every issue found at its first
    # alarm's check (AUTOTRAINER's issue list, then training stops); "first_rule", the first rule in
    # the tool's order among those that fire at its first alarm (DeepDiagnosis stops at one message).
    reports: str = "all"

    def __post_init__(self) -> None:
        if self.reports not in ("all", "first_check", "first_rule"):
            raise ValueError(f"Tool.reports must be all, first_check or first_rule, got {self.reports!r}")

    def run(self, view: View) -> dict[str, Finding]:
        return {r.name: r.check(view) for r in self.rules}

    def reported(self, findings: dict[str, Finding]) -> list[str]:
        """The rule names the tool reports, in its own order, from one run's findings."""
        fired = [r.name for r in self.rules if findings.get(r.name) and findings[r.name].fired]
        if not fired or self.reports == "all":
            return fired
        first = min(findings[n].step for n in fired)
        at_first = [n for n in fired if findings[n].step == first]
        return at_first if self.reports == "first_check" else at_first[:1]


class View:
    """Read access to one tidy trace: per-step scalars and per-layer statistics in model order."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame
        self.steps = sorted(int(s) for s in frame["step"].unique())
        layers = frame[frame["layer"] != ""].drop_duplicates("layer")
        self.layers = list(layers["layer"])
        self.kind = dict(zip(layers["layer"], layers["kind"]))
        self.activation = dict(zip(layers["layer"], layers["activation"]))
        # Every statistic reshaped once (one groupby over the trace, ~10 ms), not once per rule: a
        # rule reads a slice. The last logged value of a (step, statistic, layer) wins; a scalar's
        # NaN is never logged (RunContext.log keeps only finite values).
        per_layer = frame["layer"] != ""
        rows = frame[per_layer]
        # (stat, step) x layer in one unstack; which layers carry each statistic, to leave out the rest
        self._wide = rows.groupby(["stat", "step", "layer"], sort=True)["value"].last().unstack("layer")
        self._carried = rows.groupby("stat")["layer"].unique().to_dict()
        scalars = frame[~per_layer].drop_duplicates(["stat", "step"], keep="last")
        self._scalars = {stat: part.set_index("step")["value"].sort_index() for stat, part in scalars.groupby("stat")}
        self._memo: dict = {}

    def memo(self, key, compute: Callable[[], Any]) -> Any:
        """`compute()` once per view: a result several rules (or a tool's several rules) read."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def scalar(self, stat: str) -> pd.Series:
        found = self._scalars.get(stat)
        return found if found is not None else pd.Series(dtype=float, name="value").rename_axis("step")

    def stat(self, stat: str, layers: Iterable[str] | None = None) -> pd.DataFrame:
        """step x layer; a layer without the statistic is left out."""
        chosen = tuple(self.layers if layers is None else layers)

        def select() -> pd.DataFrame:
            if stat not in self._carried:
                return pd.DataFrame(index=pd.Index([], name="step"))
            carried = set(self._carried[stat])
            return self._table(stat)[[c for c in chosen if c in carried]]

        return self.memo(("stat", stat, chosen), select)

    def _table(self, stat: str) -> pd.DataFrame:
        """step x every layer for one statistic, sliced from the wide frame once per statistic
        (a MultiIndex .loc costs ~1 ms: once per rule's layer choice, it was a fifth of `detect`)."""
        return self.memo(("table", stat), lambda: self._wide.loc[stat])

    def with_activation(self, *names: str) -> list[str]:
        return [n for n in self.layers if self.activation[n] in names]

    def weighted(self, kind: str | None = None) -> list[str]:
        return [n for n in self.layers if self.kind[n] in ((kind,) if kind else ("conv", "linear"))]

    def diverged_at(self) -> int | None:
        nonfinite = self.scalar("nonfinite")
        return int(nonfinite.index[0]) if len(nonfinite) else None

    def nonfinite_at(self) -> int | None:
        """The first step with a non-finite value anywhere in the trace, or a recorded divergence."""
        return self.memo("nonfinite_at", self._nonfinite_at)

    def _nonfinite_at(self) -> int | None:
        bad = self.frame[
            ~np.isfinite(self.frame["value"].to_numpy())
            | (self.frame["stat"] == "nonfinite")
            | ((self.frame["stat"] == "out_nonfinite") & (self.frame["value"] > 0))
        ]
        return int(bad["step"].min()) if len(bad) else None


def first(mask: pd.Series) -> int | None:
    """The first index where a boolean series is True."""
    hits = mask[mask.fillna(False).astype(bool)]
    return int(hits.index[0]) if len(hits) else None


def any_layer(table: pd.DataFrame, condition) -> pd.Series:
    """Per step: does the condition hold on any layer? (NaN cells count as not holding.)"""
    return condition(table).fillna(False).any(axis=1) if table.shape[1] else pd.Series(dtype=bool)


def tools() -> tuple[Tool, ...]:
    from harness.detectors import autotrainer, deepdiagnosis, sagemaker, thedeepchecker

    return (autotrainer.TOOL, autotrainer.TOOL_UNGATED, deepdiagnosis.TOOL, thedeepchecker.TOOL, sagemaker.TOOL)
