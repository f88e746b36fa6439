"""Parallel and distributed grids land the same runs as a serial one; a killed worker loses
nothing that finished."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import torch

from failbench.analysis import load_runs
from failbench.discovery import load_case
from failbench.executors import WorkerLost
from failbench.sweep import run_sweep
from failbench.tracking import Tracker

CPU = torch.device("cpu")


def finals(tracker, case):
    runs = load_runs(tracker, case, "quick")
    keys = ["variant", "axes", "seed"]
    return {
        tuple(r[k] for k in keys): (r["loss"] if "loss" in r else r["filter_min"], r["verdict"])
        for r in runs.to_dict("records")
    }


def test_workers_give_the_same_runs_as_serial(tmp_path, toy):
    serial, parallel = Tracker(f"sqlite:///{tmp_path}/a.db"), Tracker(f"sqlite:///{tmp_path}/b.db")
    run_sweep(toy, "quick", serial, CPU, progress=False)
    summary = run_sweep(toy, "quick", parallel, CPU, progress=False, workers=2)
    assert summary.ran == 12
    assert finals(serial, toy) == finals(parallel, toy) and len(finals(serial, toy)) == 12


@pytest.mark.slow
def test_workers_reproduce_a_real_case_bit_for_bit(tmp_path):
    case = load_case("relu_blowup")
    serial, parallel = Tracker(f"sqlite:///{tmp_path}/a.db"), Tracker(f"sqlite:///{tmp_path}/b.db")
    kwargs = dict(variants=["baseline", "small_init+scaled_pixels"], seeds=2, overrides={"steps": 300}, progress=False)
    run_sweep(case, "quick", serial, CPU, **kwargs)
    run_sweep(case, "quick", parallel, CPU, workers=2, **kwargs)
    assert finals(serial, case) == finals(parallel, case)


def test_a_killed_worker_loses_nothing_that_finished(tmp_path, toy, tracker, monkeypatch):
    marker = tmp_path / "kill-once"
    marker.touch()
    monkeypatch.setenv("FAILBENCH_TOY_KILL_MARKER", str(marker))
    with pytest.raises(WorkerLost):
        run_sweep(toy, "quick", tracker, CPU, progress=False, workers=2)
    assert not marker.exists(), "the kill did happen"
    kept = load_runs(tracker, toy, "quick")
    assert len(kept) < 12
    resumed = run_sweep(toy, "quick", tracker, CPU, progress=False, workers=2)
    assert (resumed.ran, resumed.skipped) == (12 - len(kept), len(kept))
    assert len(load_runs(tracker, toy, "quick")) == 12


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path}/server.db",
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):  # up to 120 s on a loaded 2-core machine
            try:
                if urllib.request.urlopen(uri + "/health", timeout=1).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail("mlflow server did not start")
        yield uri
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow
def test_dask_grid_lands_every_run_on_the_server_exactly_once(mlflow_server, toy):
    import dask
    from distributed import LocalCluster

    # daemon off: a grid point may start DataLoader workers of its own
    with (
        dask.config.set({"distributed.worker.daemon": False}),
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
    ):
        executor = "dask://" + cluster.scheduler_address[len("tcp://") :]
        tracker = Tracker(mlflow_server)
        summary = run_sweep(toy, "quick", tracker, CPU, progress=False, executor=executor)
        assert summary.ran == 12
    runs = [r for r in tracker.runs(tracker.experiment_id("toy")) if r.data.tags.get("sweep") != "true"]
    hashes = [r.data.tags["point_hash"] for r in runs]
    assert len(hashes) == 12 and len(set(hashes)) == 12
    assert all(r.info.status == "FINISHED" for r in runs)


PARENT = """
import sys, time
from failbench.executors import open_pool
with open_pool(2, None) as pool:
    busy = [pool.submit(time.sleep, 120) for _ in range(2)]  # both workers mid-point
    time.sleep(1)
    print(*pool._processes, flush=True)
    time.sleep(120)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_run_leaves_no_worker_behind():
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    workers = [int(p) for p in parent.stdout.readline().split()]
    assert len(workers) == 2 and all(_alive(p) for p in workers)
    parent.kill()  # SIGKILL: no pool shutdown, no atexit
    parent.wait()
    deadline = time.monotonic() + 30
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(p) for p in workers), "a worker outlived the run that spawned it"
