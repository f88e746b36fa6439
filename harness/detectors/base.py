"""What every diagnosis rule is built from: a Finding (fired at a step, quiet, or abstained), a
Rule (one check of a trace, with the failure it names and where its thresholds are published), a
Tool (the rules of one tool, and how it reports them)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from failbench.trace_reader import View

__all__ = ["QUIET", "Finding", "Rule", "Tool", "abstain", "fire"]


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
    # "in_order": the first rule in the tool's order among all that fire over the run (failbench's
    # own detector: its mechanisms in order of what explains what, whenever each settles).
    reports: str = "all"

    def __post_init__(self) -> None:
        if self.reports not in ("all", "first_check", "first_rule", "in_order"):
            raise ValueError(f"Tool.reports must be all, first_check, first_rule or in_order, got {self.reports!r}")

    def run(self, view: View) -> dict[str, Finding]:
        return {r.name: r.check(view) for r in self.rules}

    def reported(self, findings: dict[str, Finding]) -> list[str]:
        """The rule names the tool reports, in its own order, from one run's findings."""
        fired = [r.name for r in self.rules if findings.get(r.name) and findings[r.name].fired]
        if not fired or self.reports == "all":
            return fired
        if self.reports == "in_order":
            return fired[:1]
        first = min(findings[n].step for n in fired)
        at_first = [n for n in fired if findings[n].step == first]
        return at_first if self.reports == "first_check" else at_first[:1]
