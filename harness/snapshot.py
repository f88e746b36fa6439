"""`failbench snapshot`: the judged final metrics of a profile, in a small tracked file.

The file is the reference `compare` takes as BASE and CI compares a fresh quick run with
(reports/reference/quick.json). Per case: its code hash when written, the metric names, and one row
per grid point (variant, axes, seed, the hash of the config it ran, diverged, values in the order of
the names). A case's runs are current while the code hash and every run's config hash are the ones
the case gives today (`stale_runs`): a changed budget makes them stale as a changed loop does. Floats are written
with Python's shortest round-trip repr, so a value read back is the same double, bit for bit.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd

from failbench.analysis import judged_metrics, load_runs, seed_range
from failbench.contract import Case
from failbench.identity import code_hash, config_hash, cpu_model, environment, environment_hash, git_commit

FORMAT = 1
REFERENCE_DIR = Path(__file__).resolve().parent.parent / "reports" / "reference"


class SnapshotError(ValueError):
    """A snapshot file that cannot be read or does not hold what was asked; one line for the user."""


def default_path(profile: str) -> Path:
    return REFERENCE_DIR / f"{profile}.json"


def committed(root: Path = REFERENCE_DIR) -> list[Path]:
    """Every snapshot file under reports/reference: PROFILE.json (the seeds the README tables render),
    heldout/ and ranges/ (other seed ranges and CPU capabilities, pooled as a claim's evidence)."""
    return sorted(root.rglob("*.json"))


def _finite(value) -> float | None:
    return None if value is None or pd.isna(value) or not math.isfinite(float(value)) else float(value)


def case_entry(case: Case, runs: pd.DataFrame) -> dict:
    metrics = [m for m in judged_metrics(case) if m in runs]
    rows = []
    for row in runs.sort_values(["variant", "axes", "seed"]).to_dict("records"):
        rows.append(
            {
                "variant": row["variant"],
                "axes": json.loads(row["axes"]),
                "seed": int(row["seed"]),
                # the config it ran (harness/identity.py): a profile's budget changed since makes it stale
                "config_hash": row.get("config_hash"),
                "diverged": bool(row.get("diverged", 0.0)),
                "values": [_finite(row.get(m)) for m in metrics],
            }
        )
    devices = sorted({f"{r}/{t} thread(s)" for r, t in zip(runs["device"], runs["threads"])})
    return {"code_hash": code_hash(case), "runs_on": devices, "metrics": metrics, "runs": rows}


def write_snapshot(
    tracker,
    cases: list[Case],
    profile: str,
    path: Path,
    first_seed: int | None = None,
    seeds: int | None = None,
) -> dict[str, int]:
    """Writes (or updates, case by case) the snapshot at `path`; returns runs written per case.
    `first_seed` keeps one seed range of a store that holds several: `seeds` of them (default: the
    case's profile's); every run of the store otherwise.
    Raises SnapshotError if a case has no judged runs: a reference is never written half-empty."""
    entries, capabilities = {}, set()
    for case in cases:
        runs = load_runs(tracker, case, profile)
        chosen = ""
        if first_seed is not None:
            count = seeds or case.profiles[profile].seeds
            runs = seed_range(runs, first_seed, count)
            chosen = f" of seeds {first_seed}-{first_seed + count - 1}"
        if runs.empty:
            raise SnapshotError(
                f"{case.name} has no finished {profile} runs{chosen} of its current code; "
                f"run `failbench run {case.name} --profile {profile}"
                + (f" --first-seed {first_seed}" if first_seed else "")
                + "` first"
            )
        entries[case.name] = case_entry(case, runs)
        capabilities |= set(runs.get("cpu_capability", pd.Series(dtype=str))) - {"unrecorded"}
    if len(capabilities) > 1:
        raise SnapshotError(
            f"the {profile} runs ran under CPU capabilities {', '.join(sorted(capabilities))}: a snapshot holds "
            "one (its floats are another capability's); snapshot each from its own store"
        )
    existing = read_document(path)["cases"] if path.is_file() else {}
    # The capability the runs recorded, else (runs from before it was recorded) the writer's own.
    env = {**environment(), **({"cpu_capability": capabilities.pop()} if capabilities else {})}
    document = {
        "format": FORMAT,
        "profile": profile,
        "git_commit": git_commit(),
        "environment": {**env, "cpu_model": cpu_model()},
        "cases": {**existing, **entries},
    }
    document["cases"] = dict(sorted(document["cases"].items()))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")
    return {name: len(entry["runs"]) for name, entry in entries.items()}


def config_hashes(case: Case, profile: str, points) -> dict[tuple[str, str], str]:
    """The config hash today of each (variant, axes as sorted JSON) point of `profile`."""
    return {
        (variant, axes): config_hash(case.config(variant, json.loads(axes), profile)) for variant, axes in set(points)
    }


def stale_runs(case: Case, entry: dict, profile: str) -> list[bool]:
    """Per run of a snapshot entry: whether it is not what the case runs today (other code, or a
    recorded config hash that is not today's). A run from before config hashes were recorded is
    judged by its code hash alone."""
    if entry.get("code_hash") != code_hash(case):
        return [True] * len(entry["runs"])
    keys = [(r["variant"], json.dumps(r["axes"], sort_keys=True)) for r in entry["runs"]]
    try:
        today = config_hashes(case, profile, keys)
    except (KeyError, TypeError):  # a variant or an axis the case no longer has
        return [True] * len(entry["runs"])
    return [r.get("config_hash") not in (None, today[k]) for r, k in zip(entry["runs"], keys)]


def read_document(path: Path) -> dict:
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise SnapshotError(f"no snapshot at {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"{path} is not a snapshot file: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT or "cases" not in document:
        raise SnapshotError(f"{path} is not a failbench snapshot (format {FORMAT})")
    return document


def read_snapshot(path: Path, cases: list[Case], profile: str) -> pd.DataFrame:
    """The snapshot's runs of `cases` as rows like load_runs' (case, variant, axes, seed, verdict,
    metrics), the verdict recomputed from each case's symptom today."""
    document = read_document(path)
    if document.get("profile") != profile:
        raise SnapshotError(f"{path} holds the {document.get('profile')} profile, not {profile}")
    env = {k: v for k, v in document.get("environment", {}).items() if k != "cpu_model"}
    # A snapshot written before the capability was recorded cannot promise bit-identity with anything.
    env_hash = environment_hash(env) if "cpu_capability" in env else "unrecorded"
    rows = []
    for case in cases:
        entry = document["cases"].get(case.name)
        if entry is None:
            continue
        for run, stale in zip(entry["runs"], stale_runs(case, entry, profile)):
            metrics = {m: (math.nan if v is None else v) for m, v in zip(entry["metrics"], run["values"])}
            metrics["diverged"] = float(run["diverged"])
            rows.append(
                {
                    "case": case.name,
                    "variant": run["variant"],
                    "seed": run["seed"],
                    "code_hash": entry["code_hash"],
                    "config_hash": run.get("config_hash"),
                    "current": not stale,
                    "env_hash": env_hash,
                    "cpu_capability": env.get("cpu_capability", "unrecorded"),
                    "cpu_model": document.get("environment", {}).get("cpu_model", "unrecorded"),
                    "axes": json.dumps(run["axes"], sort_keys=True),
                    **{f"axis.{k}": v for k, v in run["axes"].items()},
                    **metrics,
                    "verdict": case.verdict(metrics, run["diverged"]),
                }
            )
    if not rows:
        raise SnapshotError(f"{path} holds none of the cases {', '.join(c.name for c in cases)}")
    return pd.DataFrame(rows)
