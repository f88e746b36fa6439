"""Where grid points run: in this process, in a local process pool, or on a Dask cluster.

A grid point is pure, seeded and idempotent, so any executor gives the same results for the same
seed and thread count. Workers only compute: each returns its RunResult and the parent logs it,
so the store has a single writer (SQLite needs no locking dance) and a worker that dies mid-point
leaves nothing half-logged: its point is simply not FINISHED and the next run completes it.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path

import torch

from failbench.contract import Case
from failbench.discovery import load_case
from failbench.grid import GridPoint
from failbench.runner import RunResult, run_point


class WorkerLost(Exception):
    """A worker process died (killed, out of memory); points already finished are kept."""


def run_point_in_worker(case_name: str, cases_root: str, point: GridPoint, device_type: str, threads: int) -> RunResult:
    """The unit of work shipped to a worker: it loads the case itself (spawned processes and Dask
    workers share no memory with the parent)."""
    case = load_case(case_name, Path(cases_root))
    return run_point(case, point, torch.device(device_type), threads)


def parse_executor(spec: str | None) -> str | None:
    """`dask://HOST:PORT` -> the scheduler address `tcp://HOST:PORT`; None for local execution."""
    if not spec:
        return None
    if not spec.startswith("dask://") or ":" not in spec[len("dask://") :]:
        raise ValueError(f"unknown executor {spec!r}; use dask://HOST:PORT (a Dask scheduler)")
    return "tcp://" + spec[len("dask://") :]


@contextmanager
def open_pool(workers: int, executor: str | None) -> Iterator[Executor | None]:
    """One pool for several sweeps (`failbench run` over every case): its workers start once, not
    once a case (~2 s of interpreter, torch and harness imports per worker, measured on a 2-core
    machine); None where points run in this process (one worker, no executor)."""
    scheduler = parse_executor(executor)
    if workers == 1 and scheduler is None:
        yield None
        return
    with _pool(workers, scheduler) as pool:
        yield pool


@contextmanager
def _pool(workers: int, scheduler: str | None) -> Iterator[Executor]:
    if scheduler:
        try:
            from distributed import Client
        except ImportError:
            raise ValueError("--executor dask:// needs the dask extra: pip install '.[dask]'") from None
        with Client(scheduler, timeout="10s") as client:
            # pure=False: identical arguments must run again, never be served from Dask's cache
            yield client.get_executor(pure=False)
    else:
        # spawn, not fork: a forked child inherits torch's thread pool and MLflow's state
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=exit_with, initargs=(os.getpid(),)) as pool:
            yield pool


def exit_with(parent: int, every_s: float = 1.0) -> None:
    """A pool worker's initializer: end the worker when the `failbench run` that spawned it is gone.
    A parent killed with -9 never shuts its pool down, and its workers (and, through their pipe,
    multiprocessing's resource tracker) would sit idle at ~400 MB each until killed by hand."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(every_s)
        os._exit(1)  # no cleanup to run: a worker only computes, the parent writes

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def results(
    case: Case,
    points: Sequence[GridPoint],
    device: torch.device,
    threads: int,
    workers: int = 1,
    executor: str | None = None,
    pool: Executor | None = None,
) -> Iterator[RunResult]:
    """Run `points`, yielding each RunResult as it finishes (in completion order when parallel).
    `pool` is an open pool (`open_pool`) to reuse; without one, one is opened for these points."""
    if not points:  # no pool (seconds to start) for a sweep that reuses every point
        return
    if pool is None:
        with open_pool(workers, executor) as opened:
            if opened is None:
                for point in points:
                    yield run_point(case, point, device, threads)
            else:
                yield from results(case, points, device, threads, pool=opened)
        return
    futures = {
        pool.submit(run_point_in_worker, case.name, str(case.folder.parent), p, device.type, threads): p for p in points
    }
    try:
        for future in as_completed(futures):
            yield future.result()
    except BrokenProcessPool:
        raise WorkerLost(
            "a worker process died; the grid points that finished are kept, "
            "run the same command again to complete the rest"
        ) from None
    finally:  # a sweep stopped early (Ctrl-C, an error) leaves nothing queued in a shared pool
        for future in futures:
            future.cancel()
