"""A sweep: every grid point of one case on one profile, skipping those already finished.

A grid point already FINISHED in the store with the same identity (config, seed, device, threads,
code and environment: harness/identity.py) is not run again unless forced, so an interrupted
`make all` resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import dataclass

import torch
from tqdm import tqdm

from failbench.contract import Case
from failbench.executors import results
from failbench.grid import expand
from failbench.identity import code_hash, environment, environment_hash, git_commit, point_identity
from failbench.tracking import Tracker, point_tags


@dataclass
class SweepSummary:
    case: str
    points: int
    ran: int
    skipped: int
    train_seconds: float
    tracking_seconds: float  # the sweep waited on MLflow this long (the writer works beside it)
    wall_seconds: float
    verdicts: dict[str, int]
    writer_seconds: float = 0.0  # the background writer's own busy time, in parallel with training
    sweep_id: str | None = None  # the parent run, when anything ran: `failbench compare sweep:ID`


def run_sweep(
    case: Case,
    profile: str,
    tracker: Tracker,
    device: torch.device,
    threads: int = 1,
    variants: Iterable[str] | None = None,
    seeds: int | None = None,
    force: bool = False,
    overrides: dict | None = None,
    progress: bool = True,
    workers: int = 1,
    executor: str | None = None,
    first_seed: int = 0,
    pool=None,
) -> SweepSummary:
    start = time.perf_counter()
    tracking_before, writer_before = tracker.seconds, tracker.writer_seconds
    points = expand(case, profile, variants=variants, seeds=seeds, overrides=overrides, first_seed=first_seed)
    code, env = code_hash(case), environment_hash()
    experiment_id = tracker.experiment_id(case.name)
    done = set() if force else tracker.finished_points(experiment_id, code)
    todo = [p for p in points if point_identity(case, p, device.type, threads, code, env)[1] not in done]
    summary = SweepSummary(case.name, len(points), 0, len(points) - len(todo), 0.0, 0.0, 0.0, {})
    # A sweep is recorded even when every point is reused: it says that this commit's code and
    # environment stand behind those runs (`failbench compare commit:SHA` finds them through it).
    commit = git_commit()
    parent = tracker.start_sweep(
        experiment_id,
        {
            "case": case.name,
            "profile": profile,
            "device": device.type,
            "threads": str(threads),
            "torch_version": torch.__version__,
            "git_commit": commit,
            "code_hash": code,
            "env_hash": env,
            "environment": json.dumps(environment(), sort_keys=True),
        },
    )
    summary.sweep_id = parent
    status = "FAILED"
    try:
        bar = tqdm(total=len(todo), desc=f"{case.name} ({profile})", unit="point", disable=not progress or not todo)
        for result in results(case, todo, device, threads, workers, executor, pool=pool):
            chash, phash = point_identity(case, result.point, device.type, threads, code, env)
            tracker.log_point(
                experiment_id, parent, result, point_tags(result, case.name, code, env, chash, phash, commit)
            )
            summary.ran += 1
            summary.train_seconds += result.seconds
            summary.verdicts[result.verdict] = summary.verdicts.get(result.verdict, 0) + 1
            bar.update()
        bar.close()
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        summary.wall_seconds = time.perf_counter() - start
        tracker.end_sweep(
            parent,
            status,
            points=summary.ran,
            skipped=summary.skipped,
            train_seconds=summary.train_seconds,
            wall_seconds=summary.wall_seconds,
        )
    summary.wall_seconds = time.perf_counter() - start
    summary.tracking_seconds = tracker.seconds - tracking_before
    summary.writer_seconds = tracker.writer_seconds - writer_before
    return summary
