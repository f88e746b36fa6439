"""The harness's own cost per grid point, and serial vs parallel wall time.

Run with `make bench` (pytest-benchmark; disabled in the normal test run). Numbers, never asserted:
a benchmark reports, a test asserts behaviour.
"""

from __future__ import annotations

import torch

from failbench.discovery import load_case
from failbench.executors import results
from failbench.grid import expand
from failbench.identity import code_hash, environment_hash, point_identity
from failbench.runner import run_point
from failbench.sweep import run_sweep
from failbench.tracking import Tracker, point_tags

CPU = torch.device("cpu")


def _one_result():
    case = load_case("relu_blowup")
    point = expand(case, "quick", variants=["small_init+scaled_pixels"], seeds=1)[0]
    return case, point, run_point(case, point, CPU, 1)


def test_tracking_cost_per_point(benchmark, tmp_path):
    """One child run as the background writer stores it: ~50 params and tags, ~100 logged steps x 5
    metrics (every step in history.csv, 25 per metric as MLflow metrics), 2 PNG artifacts. A sweep
    waits for none of it unless the writer falls 32 points behind."""
    case, point, result = _one_result()
    tracker = Tracker(f"sqlite:///{tmp_path}/bench.db")
    experiment_id = tracker.experiment_id(case.name)
    parent = tracker.start_sweep(experiment_id, {"profile": "quick"})
    chash, phash = point_identity(case, point, "cpu", 1, "code", "env")
    tags = point_tags(result, case.name, "code", "env", chash, phash, "bench")
    benchmark.group = "harness overhead per grid point"
    benchmark(tracker.write_point, experiment_id, parent, result, tags)


def test_hashing_cost_per_point(benchmark):
    case = load_case("relu_blowup")
    point = expand(case, "quick", seeds=1)[0]
    benchmark.group = "harness overhead per grid point"
    benchmark(lambda: point_identity(case, point, "cpu", 1, code_hash(case), environment_hash()))


def test_worker_process_start(benchmark):
    """Spawning a 2-worker pool and running one 1-step grid point in it: the fixed cost a parallel
    sweep pays once (interpreter start, torch and case imports, the first deterministic-mode call)."""
    case = load_case("relu_blowup")
    point = expand(case, "quick", variants=["baseline"], seeds=1, overrides={"steps": 1})
    benchmark.group = "harness overhead per grid point"
    benchmark.pedantic(lambda: list(results(case, point, CPU, 1, workers=2)), rounds=3)


def _sweep(tmp_path, workers):
    case = load_case("relu_blowup")
    tracker = Tracker(f"sqlite:///{tmp_path}/sweep-{workers}.db")
    tracker.experiment_id(case.name)  # the store is created before any worker starts
    return lambda: run_sweep(case, "quick", tracker, CPU, force=True, progress=False, workers=workers)


def test_quick_profile_serial(benchmark, tmp_path):
    benchmark.group = "relu_blowup quick profile (90 grid points)"
    benchmark.pedantic(_sweep(tmp_path, 1), rounds=1)


def test_quick_profile_two_workers(benchmark, tmp_path):
    benchmark.group = "relu_blowup quick profile (90 grid points)"
    benchmark.pedantic(_sweep(tmp_path, 2), rounds=1)
