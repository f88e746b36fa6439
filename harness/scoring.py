"""Score the published diagnosis rules (harness/detectors) on each case's stored traces.

Ground truth per run is its verdict: a run with the symptom, or diverged, is sick; a cured run (no
symptom, and the case's task done) is not. An "unlearned" run (no symptom, task not done) is
neither, and is left out of every rate. A tool's diagnosis is what it *reports* (`Tool.reported`:
everything for a tool that runs each rule alone, the first check's issue list for AUTOTRAINER, the
first message for DeepDiagnosis). Per tool and case:
- detection: sick runs with any report;
- right diagnosis: of the sick runs whose failure is known (`Case.diagnosis_class`: divergence for
  a diverged run, the case's class for a run with its symptom and, where the case states one, its
  mechanism), those whose report names it;
- wrong class: of the same runs, those whose report names another class too (a tool cannot earn
  credit by firing every rule); a run with the symptom for another reason (identity_filter's slow
  starts) counts in detection only;
- false alarms: cured runs with any report;
- lead: of the detected sick runs whose symptom settles at a logged step, the share reported at or
  before that step, and the median of (symptom step - report step).
Every share carries a 95% interval that respects the runs' clustering by grid point
(`stats.clustered_share`: Wilson at Kish's effective size). A tool whose every rule abstains on a
run is counted apart, never as quiet. Reads the store only.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from failbench.contract import CURED, DIVERGED, Case
from failbench.detectors import tools
from failbench.detectors.base import Tool
from failbench.formatting import markdown_table
from failbench.stats import clustered_share
from failbench.trace_reader import View
from failbench.tracking import Tracker

SICK = ("symptom", DIVERGED)


def final_step(tracker: Tracker, case: Case, row: dict) -> float:
    """The first logged step from which the symptom holds at every later logged step (each
    threshold read on its metric's latest logged value, every logged step from the run's history);
    a divergence's own step; NaN if the symptom's metrics are not logged as step metrics or it never
    settles."""
    if row.get("diverged", 0.0):
        return float(row.get("diverged_at_step", math.nan))
    if row["verdict"] != "symptom":
        return math.nan
    metrics = tuple(dict.fromkeys(t.metric for t in case.symptom.all_of))
    found = tracker.history(row["run_id"], metrics, row.get("artifact_uri"))
    history = {metric: dict(zip(steps, values)) for metric, steps, values in found}
    history.update({m: {} for m in metrics if m not in history})
    if not all(history.values()):
        return math.nan
    steps = sorted(set().union(*history.values()))
    latest: dict[str, float] = {}
    holds = []
    for step in steps:
        for metric, values in history.items():
            if step in values:
                latest[metric] = values[step]
        holds.append(case.symptom.present(latest))
    settled = math.nan
    for step, ok in zip(steps, holds):
        if ok and math.isnan(settled):
            settled = float(step)
        elif not ok:
            settled = math.nan
    return settled


def judge(tool: Tool, view: View, expected: str | None) -> dict:
    """One tool on one trace: alarm (True / False / None = every rule abstained), whether its
    report names the expected class and whether it names another (both False where no class is
    expected), its first report's step, and every rule that fired."""
    findings = tool.run(view)
    fired = {name: f for name, f in findings.items() if f.fired}
    classes = {r.name: r.failure_class for r in tool.rules}
    if not fired:
        abstained = all(f.fired is None for f in findings.values())
        return {
            "alarm": None if abstained else False,
            "right": False,
            "wrong": False,
            "first_alarm": math.nan,
            "reported": "",
            "fired": "",
        }
    reported = tool.reported(findings)
    return {
        "alarm": True,
        "right": expected is not None and any(classes[n] == expected for n in reported),
        "wrong": expected is not None and any(classes[n] != expected for n in reported),
        "first_alarm": float(min(fired[n].step for n in reported)),
        "reported": ", ".join(reported),
        "fired": ", ".join(sorted(fired)),
    }


def judge_runs(tracker: Tracker, case: Case, runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run x tool."""
    rows = []
    for row in runs.to_dict("records"):
        trace = tracker.trace(row["run_id"], row.get("artifact_uri"))
        settled = final_step(tracker, case, row)
        base = {
            "case": case.name,
            "variant": row["variant"],
            "axes": row["axes"],
            "seed": row["seed"],
            "verdict": row["verdict"],
            "expected": case.diagnosis_class(row["verdict"], row),
            "symptom_final": settled,
        }
        view = None if trace is None or trace.empty else View(trace)  # read once, shared by every tool
        for tool in tools():
            if view is None:
                rows.append(
                    {
                        **base,
                        "tool": tool.name,
                        "alarm": None,
                        "right": False,
                        "wrong": False,
                        "first_alarm": math.nan,
                        "reported": "",
                        "fired": "",
                        "traced": False,
                    }
                )
            else:
                rows.append({**base, "tool": tool.name, "traced": True, **judge(tool, view, base["expected"])})
    return pd.DataFrame(rows)


def _cluster(group: pd.DataFrame) -> list:
    return list(zip(group["variant"], group["axes"]))


def scores(judged: pd.DataFrame) -> pd.DataFrame:
    """Per case x tool: the rates as clustered Shares, abstentions, the lead, the median steps."""
    out = []
    for (case, tool), group in judged.groupby(["case", "tool"], sort=False):
        spoke = group[group["alarm"].notna()]
        sick, cured = spoke[spoke["verdict"].isin(SICK)], spoke[spoke["verdict"] == CURED]
        known = sick[sick["expected"].notna()]
        alarmed = sick["alarm"] == True  # noqa: E712 (object column of True/False)
        detected = sick[alarmed]
        timed = detected[detected["symptom_final"].notna()]
        lead = timed["symptom_final"] - timed["first_alarm"]
        out.append(
            {
                "case": case,
                "tool": tool,
                "detection": clustered_share(alarmed, _cluster(sick)),
                "right_diagnosis": clustered_share(known["right"].astype(bool), _cluster(known)),
                "wrong_class": clustered_share(known["wrong"].astype(bool), _cluster(known)),
                "false_alarm": clustered_share(cured["alarm"] == True, _cluster(cured)),  # noqa: E712
                "early": clustered_share(lead >= 0, _cluster(timed)),
                "lead_steps": float(lead.median()) if len(lead) else math.nan,
                "abstained": int(group["alarm"].isna().sum()),
                "runs": len(group),
                "first_alarm_step": detected["first_alarm"].median() if len(detected) else math.nan,
                "symptom_final_step": sick["symptom_final"].median() if len(sick) else math.nan,
            }
        )
    return pd.DataFrame(out)


COLUMNS = {
    "case": "case",
    "tool": "tool",
    "detection": "detection (sick runs)",
    "right_diagnosis": "right diagnosis (sick runs of known cause)",
    "wrong_class": "wrong class (sick runs of known cause)",
    "false_alarm": "false alarms (cured runs)",
    "early": "reported by the symptom's step",
    "lead_steps": "lead (median steps)",
    "abstained": "abstained",
    "first_alarm_step": "first report (median step)",
    "symptom_final_step": "symptom settles (median step)",
}


def to_markdown(table: pd.DataFrame) -> str:
    def step(value: float) -> str:  # a step count, whole: 3008, never 3.01e+03
        return "-" if math.isnan(value) else f"{value:g}"

    rows = [
        {
            **r,
            "abstained": f"{r['abstained']}/{r['runs']}",
            "lead_steps": step(r["lead_steps"]),
            "first_alarm_step": step(r["first_alarm_step"]),
            "symptom_final_step": step(r["symptom_final_step"]),
        }
        for r in table.to_dict("records")
    ]
    return markdown_table(rows, list(COLUMNS), COLUMNS)


def fired_by_variant(judged: pd.DataFrame) -> pd.DataFrame:
    """Per case x variant x tool: how many runs each rule fired on, e.g. 'DeadRelu 10/10'."""
    out = []
    for (case, variant, tool), group in judged.groupby(["case", "variant", "tool"], sort=False):
        counts: dict[str, int] = {}
        for fired in group["fired"]:
            for name in filter(None, fired.split(", ")):
                counts[name] = counts.get(name, 0) + 1
        verdicts = group["verdict"].value_counts()
        out.append(
            {
                "case": case,
                "variant": variant,
                "tool": tool,
                "verdicts": ", ".join(f"{n} {v}" for v, n in verdicts.items()),
                "fired": ", ".join(f"{k} {v}/{len(group)}" for k, v in sorted(counts.items())) or "-",
            }
        )
    return pd.DataFrame(out)


def by_variant_markdown(judged: pd.DataFrame) -> str:
    """`fired_by_variant` as a GitHub table (`failbench detect --by-variant`)."""
    table = fired_by_variant(judged)
    headers = {"fired": "rules fired (runs)"}
    return markdown_table(table.to_dict("records"), ["case", "variant", "tool", "verdicts", "fired"], headers)


def judge_stored(tracker: Tracker, cases: list, profile: str, missing=lambda case: None) -> pd.DataFrame:
    """Every rule on every stored trace of the cases' judged runs; `missing(case)` is told of a
    case without runs (`failbench detect` says so, the detectors page leaves it out)."""
    from failbench.analysis import load_runs

    judged = []
    for case in cases:
        runs = load_runs(tracker, case, profile)
        if runs.empty:
            missing(case)
        else:
            judged.append(judge_runs(tracker, case, runs))
    return pd.concat(judged, ignore_index=True) if judged else pd.DataFrame()


def judge_cases(case_names: list[str], tracking_uri: str, profile: str, cases_root: str = "") -> pd.DataFrame:
    """`judge_stored` for the detectors page, by case name; `cases_root` is another folder of cases (a
    test's fixtures), as for the other reports."""

    from failbench.discovery import CASES_DIR, load_case
    from failbench.tracking import open_store

    root = Path(cases_root) if cases_root else CASES_DIR
    return judge_stored(open_store(tracking_uri or None), [load_case(n, root) for n in case_names], profile)


def default_workers() -> int:
    """One process per CPU core this process may run on (its affinity, else every core)."""
    import os

    cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    return max(1, len(cores) if cores else os.cpu_count() or 1)


def judge_in_processes(
    case_names: list[str],
    tracking_uri: str,
    profile: str,
    cases_root: str = "",
    workers: int = 1,
    start_method: str = "spawn",
) -> pd.DataFrame:
    """`judge_cases` with the cases shared among `workers` processes, the largest case first (it
    takes longest; 280 of the quick store's 780 runs are identity_filter's): the same rows in the
    same order as one process gives. `start_method` "fork" starts each worker with the caller's
    imports (torch, MLflow, the cases: ~4 s a worker to import again); for a caller that holds no
    store connection and runs no threads of its own (`failbench detect`), never a notebook kernel."""
    if workers <= 1 or len(case_names) <= 1:
        return judge_cases(case_names, tracking_uri, profile, cases_root)
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from itertools import repeat

    from failbench.discovery import CASES_DIR, load_case

    root = Path(cases_root) if cases_root else CASES_DIR
    size = {name: _grid_size(load_case(name, root), profile) for name in case_names}
    order = sorted(case_names, key=lambda name: -size[name])
    # a notebook kernel spawns: it has threads of its own (heartbeat, output) that a fork would copy
    context = multiprocessing.get_context(start_method)
    with ProcessPoolExecutor(min(workers, len(case_names)), mp_context=context) as pool:
        parts = dict(
            zip(
                order,
                pool.map(judge_cases, [[n] for n in order], repeat(tracking_uri), repeat(profile), repeat(cases_root)),
            )
        )
    found = [parts[n] for n in case_names if not parts[n].empty]
    return pd.concat(found, ignore_index=True) if found else pd.DataFrame()


def _grid_size(case: Case, profile: str) -> int:
    """Grid points x seeds of a case's profile: how long judging it takes, roughly."""
    from failbench.grid import expand

    return len(expand(case, profile)) if profile in case.profiles else 0


RATES = {
    "detection": "detection on sick runs",
    "right_diagnosis": "right diagnosis on sick runs of known cause",
    "wrong_class": "wrong class on sick runs of known cause",
    "false_alarm": "false alarms on cured runs",
}
