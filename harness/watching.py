"""`failbench.watch(model, optimizer, warn=True)`: the recorder, and a warning the step a failure settles.

At each traced step the warning reads the trace so far, never what follows, with failbench's own
rules (detectors/own.py, the committed fit). The first time a mechanism has been past its threshold
on the last three traced steps (the rules' own "settled" asks for two at the run's end; a warning
asks for one more, as an early transient is no end: on the quick grid's seeds 0-9, three keep 3 of
448 cured runs quiet that two warned on, 13), or at once when the loss stops being finite, it warns
once, with the suite's case of that mechanism and the fixes that cured it there:

    failbench: dead_relu settled at step 120, seen at step 190 (units of a ReLU layer active on < 1%
    of samples: 1 against 1); the suite's case: relu_blowup, cured there by ...

as a Python warning (`FailureWarning`, a `UserWarning`: `warnings.simplefilter("error",
FailureWarning)` stops the loop) and, inside an active MLflow run, a tag `failbench.warning.<mechanism>`.
The end-of-run verdict (`failbench diagnose`) can differ: a mechanism may settle and then leave.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

from torch import nn

from failbench.detectors import own
from failbench.diagnose import suite_case
from failbench.recorder import USER_GROWTH, Recorder
from failbench.trace_reader import View


class FailureWarning(UserWarning):
    """A failure mechanism settled in the watched run."""


@dataclass
class Warner:
    """`Recorder.on_traced`: judge the trace so far, warn once per mechanism."""

    fit: dict = field(default_factory=own.load_fit)
    persist: int = 3  # traced steps past the threshold before a warning (module docstring)
    warned: dict[str, int] = field(default_factory=dict)  # mechanism -> the step it was warned at
    messages: list[str] = field(default_factory=list)

    def __call__(self, recorder: Recorder, step: int) -> None:
        for found in self.new(recorder.frame()):
            text = self.text(found, step)
            self.messages.append(text)
            warnings.warn(text, FailureWarning, stacklevel=3)
            _tag(found.mechanism, text)

    def new(self, frame) -> list[own.Diagnosis]:
        """The mechanisms settled in the trace so far (`frame`, up to its last traced step) that were
        not warned yet; marks them warned, at that step."""
        step = int(frame["step"].max())
        traced = frame.loc[frame["layer"] != "", "step"].unique()
        found = [
            f
            for f in own.diagnose(View(frame), self.fit["thresholds"])
            if f.mechanism not in self.warned
            # a loss that stopped being finite is final; every other mechanism must have lasted
            and (f.mechanism == own.EXPLODING or (traced >= f.step).sum() >= self.persist)
        ]
        for f in found:
            self.warned[f.mechanism] = step
        return found

    def text(self, found: own.Diagnosis, step: int) -> str:
        case, info = suite_case(self.fit, found.mechanism)
        value = "" if math.isnan(found.value) else f": {found.value:.3g} against {found.threshold:.3g}"
        said = f"failbench: {found.mechanism} settled at step {found.step}, seen at step {step} ({found.why}{value})"
        if case is None:
            return said
        cures = [
            f"{fix} ({v.get('cured', 0)}/{sum(v.values())})"
            for fix, v in info.get("fixes", {}).items()
            if fix != "baseline" and v.get("cured", 0) * 2 >= sum(v.values()) > 0
        ]
        return f"{said}; the suite's case: {case}, cured there by {', '.join(cures) or 'no fix of its grid'}"


def _tag(mechanism: str, text: str) -> None:
    import sys

    if "mlflow" not in sys.modules:  # a loop that tracks with MLflow has imported it
        return
    import mlflow

    if mlflow.active_run() is not None:
        mlflow.set_tag(f"failbench.warning.{mechanism}", text[:5000])


def watch(model: nn.Module, optimizer=None, warn: bool = False) -> Recorder:
    """Hooks on `model` (and on optimizer steps) that record the suite's per-layer trace (Recorder);
    with `warn=True`, a FailureWarning the first time a failure mechanism settles (module docstring).
    Its `on_traced` (the Warner) keeps what was warned and when."""
    return Recorder(model, optimizer, growth=USER_GROWTH, on_traced=Warner() if warn else None)


def replay(frame, fit: dict | None = None, persist: int = 3) -> dict[str, int]:
    """What a Warner would have warned on a finished trace, and at which traced step: the trace cut at
    each of its traced steps in turn as the live recorder had it there (every scalar logged up to it,
    that step's update statistics not yet)."""
    warner = Warner(fit, persist) if fit is not None else Warner(persist=persist)
    traced = frame.loc[frame["layer"] != "", "step"].unique().tolist()
    traced = sorted(set(traced) | set(frame.loc[frame["stat"] == "nonfinite", "step"].tolist()))
    later = frame["stat"].isin(AFTER_THE_NEXT_STEP)
    for step in traced:
        warner.new(frame[(frame["step"] < step) | ((frame["step"] == step) & ~later)])
    return dict(warner.warned)


# A traced step's update statistics are taken at the optimizer step that follows it (trace.py,
# `update_stats`): the live warning at that step has not seen them yet.
AFTER_THE_NEXT_STEP = ("upd_ratio", "upd_absmean_ratio")


# -- scoring the warning -------------------------------------------------------------------------
def warning_row(frame, verdict: str, fit: dict | None = None, persist: int = 3, planned: int | None = None) -> dict:
    """One run: its end-of-run verdict (failbench's first finding on the whole trace, or "none"), the
    first warning a Warner would have given and its step, the run's last step, and the steps it was
    to take (`planned`: a run stopped at its first NaN, as the suite's are, ends there)."""
    fit = fit or own.load_fit()
    ended = own.diagnose(View(frame), fit["thresholds"])
    warned = replay(frame, fit, persist)
    first = min(warned.items(), key=lambda kv: kv[1]) if warned else (None, math.nan)
    last = int(frame["step"].max())
    return {
        "verdict": verdict,
        "end_verdict": ended[0].mechanism if ended else "none",
        "warned": first[0],
        "warned_at": first[1],
        "last_step": last,
        "planned_steps": planned if planned is not None else last,
    }


def warning_scores(rows: list[dict]) -> dict:
    """Over `warning_row`s: the share of sick runs whose end verdict names a mechanism that were
    warned before the last quarter of the run as recorded (to its last step) and of the run as
    planned (its steps: a divergence the suite stops at its NaN is warned at its recorded end, but
    a quarter or more before the end of a loop that goes on), the median lead (last step - warning
    step, in steps and as a share of the run), and the share of healthy and cured runs warned."""
    import numpy as np

    def warned(r: dict) -> bool:
        return isinstance(r["warned"], str)  # a mechanism's name; None (or a table's NaN) when quiet

    sick = [r for r in rows if r["verdict"] in ("symptom", "diverged") and r["end_verdict"] != "none"]
    early = [r for r in sick if warned(r) and r["warned_at"] <= 0.75 * r["last_step"]]
    early_planned = [r for r in sick if warned(r) and r["warned_at"] <= 0.75 * r["planned_steps"]]
    quiet = [r for r in rows if r["verdict"] in ("cured", "healthy")]
    leads = [r["last_step"] - r["warned_at"] for r in sick if warned(r)]
    shares = [(r["last_step"] - r["warned_at"]) / r["last_step"] for r in sick if warned(r)]
    return {
        "sick named at the end": len(sick),
        "warned before the last quarter": len(early),
        "of the planned steps": len(early_planned),
        "median lead (steps)": float(np.median(leads)) if leads else math.nan,
        "median lead (share of the run)": float(np.median(shares)) if shares else math.nan,
        "healthy or cured": len(quiet),
        "warned": sum(warned(r) for r in quiet),
    }


def score_store(tracker, cases: list, profile: str = "quick", persist: int = 3) -> list[dict]:
    """`warning_row` of every sick or cured run of the cases that has a trace, with its case and variant."""
    import json

    fit = own.load_fit()
    rows = []
    for case, run, frame in own.traced_runs(tracker, cases, profile):
        if run["verdict"] not in ("symptom", "diverged", "cured"):
            continue
        config = case.config(run["variant"], json.loads(run.get("axes") or "{}"), profile)
        planned = getattr(config, "steps", None)
        rows.append(
            {"case": case.name, "variant": run["variant"], **warning_row(frame, run["verdict"], fit, persist, planned)}
        )
    return rows


EARLY = "warned before the last quarter (of the run as recorded; as planned)"


def scores_markdown(rows: list[dict]) -> str:
    """`warning_scores` per case and over all, as the table reports/README.md shows."""
    from failbench.formatting import markdown_table

    def line(name: str, group: list[dict]) -> dict:
        s = warning_scores(group)
        lead = (
            "-"
            if math.isnan(s["median lead (steps)"])
            else f"{s['median lead (steps)']:.0f}; {s['median lead (share of the run)']:.0%}"
        )
        return {
            "case": name,
            "sick runs the end verdict names": s["sick named at the end"],
            EARLY: f"{s['warned before the last quarter']}; {s['of the planned steps']}",
            "median lead (steps; share of the run)": lead,
            "cured runs warned": f"{s['warned']}/{s['healthy or cured']}",
        }

    cases = sorted({r["case"] for r in rows})
    table = [line(c, [r for r in rows if r["case"] == c]) for c in cases] + [line("all", rows)]
    return markdown_table(table, list(table[0]))
