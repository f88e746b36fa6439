"""`failbench diagnose`: one run's trace against the suite.

What it says, in the order a person reads: the documented failure(s) the run ends in (failbench's
own detector, failbench.detectors.own), each with its confidence and evidence (the statistic, the step
it settled at, beside the suite's sick and cured runs' values); the fixes that cured that case in
the suite and those that did not; then each published tool's report on the same trace.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from failbench.detectors.own import FIT_FILE, diagnose, load_fit, nearest, statistics
from failbench.formatting import median_text
from failbench.tracking import TRACE_ARTIFACT

COLUMNS = ["step", "layer", "kind", "activation", "stat", "value"]


class TraceError(ValueError):
    """A trace that cannot be read; the message is the one line the user sees."""


def read_trace(source: str, tracking_uri: str | None = None) -> pd.DataFrame:
    """A trace from a Parquet file, or `mlflow:RUN_ID`: the run's trace.parquet artifact."""
    if source.startswith("mlflow:"):
        return _from_mlflow(source.removeprefix("mlflow:"), tracking_uri)
    path = Path(source)
    if not path.is_file():
        raise TraceError(f"no such trace file: {source}")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # any unreadable file is the user's input, reported in one line
        raise TraceError(f"{source} is not a Parquet trace: {type(exc).__name__}: {exc}".splitlines()[0]) from None
    return _checked(frame, source)


def _from_mlflow(run_id: str, tracking_uri: str | None) -> pd.DataFrame:
    from failbench.tracking import TrackingError, open_store

    try:
        tracker = open_store(tracking_uri)
    except TrackingError as exc:
        raise TraceError(str(exc)) from None
    try:
        frame = tracker.trace(run_id)
    except Exception as exc:  # MLflow's own error for an unknown run id
        raise TraceError(f"no run {run_id!r} in {tracker.uri}: {type(exc).__name__}") from None
    if frame is None:
        raise TraceError(f"run {run_id} has no {TRACE_ARTIFACT} artifact (record one with failbench.watch)")
    return _checked(frame, f"mlflow:{run_id}")


def _checked(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise TraceError(f"{source} is not a failbench trace: no column(s) {', '.join(missing)}")
    if frame.empty:
        raise TraceError(f"{source} is an empty trace: did the loop call rec.log(step, loss=...)?")
    return frame


def report(frame: pd.DataFrame, source: str, fit_file: Path | None = None) -> dict:
    """Everything `diagnose` prints, as data (what --json writes); `fit_file`: thresholds written by
    `failbench calibrate --out` (default: the package's own)."""
    from failbench.detectors import tools
    from failbench.trace_reader import View

    fitted = load_fit(fit_file or FIT_FILE)
    view = View(frame)
    failures = []
    for found in diagnose(view, fitted["thresholds"]):
        case, info = suite_case(fitted, found.mechanism)
        fixes = info.get("fixes", {})
        failures.append(
            {
                "mechanism": found.mechanism,
                "case": case,
                "title": info.get("title"),
                "post": info.get("post"),
                "confidence": _number(found.confidence),
                "settled_at_step": found.step,
                "evidence": {
                    "why": found.why,
                    "value": _number(found.value),
                    "threshold": _number(found.threshold),
                    "suite_sick_median": _number(found.sick_median),
                    "suite_cured_median": _number(found.cured_median),
                },
                "cured_by": _shares(fixes, cured=True),
                "not_cured_by": _shares(fixes, cured=False),
            }
        )
    published, lacking = {}, {}
    for tool in tools():
        if tool.name == "failbench":
            continue
        findings = tool.run(view)
        reported = tool.reported(findings)
        abstained = all(f.fired is None for f in findings.values())
        published[tool.name] = None if abstained else [{"rule": name, "step": findings[name].step} for name in reported]
        if abstained:  # what its rules said they lack, each reason once
            lacking[tool.name] = list(dict.fromkeys(f.why for f in findings.values() if f.why))
    table = statistics(view, fitted["thresholds"])
    closest = nearest(table) if not failures else None
    return {
        "source": source,
        "steps": [int(view.steps[0]), int(view.steps[-1])] if view.steps else [],
        "failures": failures,
        "statistics": table,
        "nearest": closest["mechanism"] if closest else None,
        "published_tools": published,
        "published_tools_lack": lacking,
        "fitted_on": fitted["fitted_on"],
    }


def suite_case(fitted: dict, mechanism: str) -> tuple[str | None, dict]:
    """The suite's case a finding is told through (the fit's last case of that class, by name), and
    what the fit keeps of it (its post, title, fixes' verdicts)."""
    mine = [(name, info) for name, info in sorted(fitted["cases"].items()) if info["failure_class"] == mechanism]
    return mine[-1] if mine else (None, {})


def _number(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def _shares(fixes: dict, cured: bool) -> list[dict]:
    """Variants other than the baseline whose runs were mostly cured (or not), most cured first."""
    out = []
    for variant, verdicts in fixes.items():
        if variant == "baseline":
            continue
        runs = sum(verdicts.values())
        share = verdicts.get("cured", 0) / runs if runs else 0.0
        if (share >= 0.5) == cured:
            out.append({"fix": variant, "cured": verdicts.get("cured", 0), "runs": runs})
    return sorted(out, key=lambda f: (-f["cured"] / f["runs"], f["fix"]))


def to_text(found: dict) -> str:
    lines = []
    span = f" (steps {found['steps'][0]}-{found['steps'][1]})" if found["steps"] else ""
    if not found["failures"]:
        closest = f"; nearest: {found['nearest']}" if found.get("nearest") else ""
        rows = {r["mechanism"]: r for r in found["statistics"]}
        way = rows[found["nearest"]].get("way_to_threshold") if found.get("nearest") else None
        if way is not None:
            closest += f" ({way:.0%} of the way from the suite's cured runs to its threshold)"
        lines.append(f"{found['source']}{span}: none of the suite's failures{closest}")
    for i, f in enumerate(found["failures"]):
        ev = f["evidence"]
        where = f"the suite's {f['case']}" if f["case"] else "no case of the suite"
        confidence = "unknown" if f["confidence"] is None else f"{f['confidence']:.0%}"
        # the first is the diagnosis (the reporting order: a cause before what it causes); the
        # others are what the run also shows
        head = f"{found['source']}{span}" if i == 0 else "also"
        lines.append(f"{head}: {f['mechanism']}, as in {where} (confidence {confidence})")
        if ev["value"] is not None:
            lines.append(
                f"  evidence: {ev['why']} = {ev['value']:.3g} from step {f['settled_at_step']} to the end "
                f"(threshold {ev['threshold']:.3g}; "
                f"the suite's {f['mechanism']} runs {median_text(ev['suite_sick_median'], 'none had it')}, "
                f"its cured runs {median_text(ev['suite_cured_median'], 'none had it')})"
            )
        else:
            lines.append(f"  evidence: {ev['why']} at step {f['settled_at_step']}")
        if f["title"]:
            lines.append(f"  the case: {f['title']} ({f['post']})")
        cured = ", ".join(f"{x['fix']} {x['cured']}/{x['runs']}" for x in f["cured_by"]) or "none in the suite"
        not_cured = ", ".join(f"{x['fix']} {x['cured']}/{x['runs']}" for x in f["not_cured_by"]) or "-"
        if f["case"]:
            lines.append(f"  cured it in the suite: {cured}")
            lines.append(f"  did not: {not_cured}")
    lines.extend(_statistics_text(found["statistics"]))
    lines.append("published tools on this trace:")
    for tool, reported in found["published_tools"].items():
        lacks = "; ".join(found.get("published_tools_lack", {}).get(tool, [])) or "the trace lacks what it reads"
        said = (
            f"abstains ({lacks})"
            if reported is None
            else ", ".join(f"{r['rule']} (step {r['step']})" for r in reported) or "nothing"
        )
        lines.append(f"  {tool}: {said}")
    fit = found["fitted_on"]
    lines.append(
        f"(failbench's thresholds: fitted on {fit['runs']} {fit['profile']} runs, seeds {_span(fit['seeds'])})"
    )
    return "\n".join(lines)


def _statistics_text(rows: list[dict]) -> list[str]:
    """The statistics table: each mechanism's value on this run against its threshold, or why it
    was not judged."""
    lines = ["statistics (margin: past the threshold > 0, short of it < 0; decades for ratios, log-odds for shares):"]
    for r in rows:
        if r["unjudged"]:
            said = f"not judged: {r['unjudged']}"
        elif r["threshold"] is None:
            said = f"at step {r['settled_at_step']}" if r["past"] else r["note"]
        elif r["value"] is None:
            said = f"threshold {r['threshold']:.3g}: {r['note']}"
        else:
            margin = "" if r["margin"] is None else f", margin {r['margin']:+.2f}"
            since = f", settled from step {r['settled_at_step']}" if r["past"] else ""
            said = f"{r['value']:.3g} (threshold {r['threshold']:.3g}{margin}{since})"
        lines.append(f"  {r['mechanism']}: {said}")
    return lines


def _span(seeds: list[int]) -> str:
    return f"{seeds[0]}-{seeds[-1]}" if seeds else "-"
