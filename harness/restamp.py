"""`failbench restamp`: a snapshot of older code made current, where the code's results did not move.

A snapshot names the code hash of the runs it holds and each run's config hash (harness/identity.py);
a change anywhere on a case's path (a refactor of the trace, a renamed helper) makes every snapshot
of the case stale, though most such changes move no float. Re-running a full profile to prove it
costs hours, so this re-runs one seed per variant and axis point (the smallest seed it holds there) and
compares every judged metric with the snapshot's, bit for bit. Only when all are identical does it
write the current code hash (and what it checked, under `restamped`); otherwise it writes nothing
for that case and names the points that moved: those need a fresh `failbench run` and `snapshot`.

Bits are only comparable under the snapshot's environment and CPU (harness/compare.py): a
snapshot restamped on another capability or CPU model fails honestly and says so.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from failbench.contract import Case
from failbench.executors import results
from failbench.grid import GridPoint
from failbench.identity import code_hash, cpu_model, environment, git_commit
from failbench.snapshot import REFERENCE_DIR, config_hashes, read_document, stale_runs


@dataclass
class Restamp:
    """One case of one snapshot: what was checked and what it found."""

    path: Path
    case: str
    old_hash: str
    new_hash: str
    was_current: bool = False  # code and every recorded config as the case's today: nothing to do
    points: int = 0
    moved: list[str] = field(default_factory=list)  # "variant axes seed: metric snapshot -> now"

    @property
    def current(self) -> bool:
        return self.was_current

    @property
    def identical(self) -> bool:
        return self.points > 0 and not self.moved


def _name(path: Path) -> str:
    """The snapshot as a user finds it: relative to reports/reference (heldout/full.json), else as given."""
    try:
        return str(path.resolve().relative_to(REFERENCE_DIR))
    except ValueError:
        return str(path)


def one_seed_per_point(case: Case, entry: dict, profile: str) -> list[GridPoint]:
    """The smallest seed of every variant and axis point the snapshot holds."""
    smallest: dict[tuple, int] = {}
    for run in entry["runs"]:
        key = (run["variant"], tuple(sorted(run["axes"].items())))
        smallest[key] = min(run["seed"], smallest.get(key, run["seed"]))
    return [GridPoint(case.name, v, axes, seed, profile) for (v, axes), seed in sorted(smallest.items())]


def _same(snapshot_value, now) -> bool:
    if snapshot_value is None:  # written for a missing or non-finite value
        return now is None or not math.isfinite(now)
    return now is not None and float(now) == snapshot_value


def moved_metrics(entry: dict, point: GridPoint, metrics: dict[str, float], diverged: bool) -> list[str]:
    """What differs, bit for bit, between the snapshot's run at `point` and a fresh one."""
    run = next(
        r
        for r in entry["runs"]
        if r["variant"] == point.variant and r["seed"] == point.seed and tuple(sorted(r["axes"].items())) == point.axes
    )
    label = f"{point.variant} {dict(point.axes) or ''} seed {point.seed}".replace("  ", " ")
    found = [f"{label}: diverged {run['diverged']} -> {diverged}"] if run["diverged"] != diverged else []
    for name, value in zip(entry["metrics"], run["values"]):
        if not _same(value, metrics.get(name)):
            found.append(f"{label}: {name} {value!r} -> {metrics.get(name)!r}")
    return found


def restamp(path: Path, cases: list[Case], workers: int = 1, progress: Callable[[str], None] = print) -> list[Restamp]:
    """Checks every stale case of the snapshot at `path` and rewrites the file with the current
    hash of each case whose runs are bit-identical; returns one Restamp per case it holds."""
    document = read_document(path)
    profile = document["profile"]
    found = []
    for case in cases:
        entry = document["cases"].get(case.name)
        if entry is None:
            continue
        item = Restamp(path, case.name, entry["code_hash"], code_hash(case))
        found.append(item)
        if profile not in case.profiles:
            item.moved.append(f"the case no longer declares the profile {profile!r}")
            continue
        # Current: today's code, and every run's config recorded as today's. A snapshot from before
        # config hashes were recorded is checked once, and gets them.
        recorded = all(r.get("config_hash") for r in entry["runs"])
        item.was_current = recorded and not any(stale_runs(case, entry, profile))
        if item.current:
            continue
        points = one_seed_per_point(case, entry, profile)
        progress(f"{_name(path)} {case.name}: re-running {len(points)} point(s), one seed each ({profile})")
        for result in results(case, points, torch.device("cpu"), threads=1, workers=workers):
            item.points += 1
            item.moved += moved_metrics(entry, result.point, result.metrics, result.verdict == "diverged")
        if item.identical:
            entry["restamped"] = {
                "from": item.old_hash,
                "points": item.points,
                "git_commit": git_commit(),
                "environment": {**environment(), "cpu_model": cpu_model()},
            }
            entry["code_hash"] = item.new_hash
            today = config_hashes(
                case, profile, [(r["variant"], json.dumps(r["axes"], sort_keys=True)) for r in entry["runs"]]
            )
            for run in entry["runs"]:  # the config each point ran is today's: its bits came back
                run["config_hash"] = today[(run["variant"], json.dumps(run["axes"], sort_keys=True))]
    if any(i.identical for i in found):
        # The bits were reproduced here, so they are this CPU's: a snapshot from before the
        # capability was recorded gets it now.
        env = document.setdefault("environment", {})
        env.setdefault("cpu_capability", environment()["cpu_capability"])
        env.setdefault("cpu_model", cpu_model())
        path.write_text(json.dumps(document, indent=1, sort_keys=False) + "\n")
    return found


def summary(item: Restamp, shown: int = 5) -> str:
    """One line per case, and the first few points that moved."""
    where = f"{_name(item.path)} {item.case}"
    if item.current:
        return f"{where}: already current ({item.new_hash})"
    if item.identical and item.old_hash == item.new_hash:
        return f"{where}: {item.points} point(s) bit-identical; their configs recorded ({item.new_hash})"
    if item.identical:
        return f"{where}: {item.points} point(s) bit-identical; restamped {item.old_hash} -> {item.new_hash}"
    lines = [
        f"{where}: NOT restamped, {len(item.moved)} difference(s) on {item.points} point(s); re-run and snapshot it"
    ]
    lines += [f"  {m}" for m in item.moved[:shown]]
    if len(item.moved) > shown:
        lines.append(f"  ... and {len(item.moved) - shown} more")
    return "\n".join(lines)
