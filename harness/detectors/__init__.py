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
    # AUTOTRAINER and DeepDiagnosis stop training at their first alarm: only its class counts as
    # their diagnosis. TheDeepChecker and SageMaker Debugger report every rule that fires.
    first_alarm_only: bool = False

    def run(self, view: View) -> dict[str, Finding]:
        return {r.name: r.check(view) for r in self.rules}


class View:
    """Read access to one tidy trace: per-step scalars and per-layer statistics in model order."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame
        self.steps = sorted(int(s) for s in frame["step"].unique())
        layers = frame[frame["layer"] != ""].drop_duplicates("layer")
        self.layers = list(layers["layer"])
        self.kind = dict(zip(layers["layer"], layers["kind"]))
        self.activation = dict(zip(layers["layer"], layers["activation"]))
        self._pivots: dict[str, pd.DataFrame] = {}

    def scalar(self, stat: str) -> pd.Series:
        rows = self.frame[(self.frame["layer"] == "") & (self.frame["stat"] == stat)]
        return rows.drop_duplicates("step", keep="last").set_index("step")["value"].sort_index()

    def stat(self, stat: str, layers: Iterable[str] | None = None) -> pd.DataFrame:
        """step x layer; a layer without the statistic is left out."""
        if stat not in self._pivots:
            rows = self.frame[(self.frame["layer"] != "") & (self.frame["stat"] == stat)]
            table = rows.pivot_table(index="step", columns="layer", values="value", aggfunc="last", dropna=False)
            self._pivots[stat] = table[[c for c in self.layers if c in table.columns]].sort_index()
        table = self._pivots[stat]
        return table if layers is None else table[[c for c in layers if c in table.columns]]

    def with_activation(self, *names: str) -> list[str]:
        return [n for n in self.layers if self.activation[n] in names]

    def weighted(self, kind: str | None = None) -> list[str]:
        return [n for n in self.layers if self.kind[n] in ((kind,) if kind else ("conv", "linear"))]

    def diverged_at(self) -> int | None:
        nonfinite = self.scalar("nonfinite")
        return int(nonfinite.index[0]) if len(nonfinite) else None

    def nonfinite_at(self) -> int | None:
        """The first step with a non-finite value anywhere in the trace, or a recorded divergence."""
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
