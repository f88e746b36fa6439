"""Run one grid point reproducibly and turn it into a RunResult.

The runner owns what is not the case's: seeding, determinism, threads, device, timing, and
divergence. A NaN or inf is an outcome to record (the step it happened at, the last finite values),
never a crash and never filled in.
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from failbench.contract import DIVERGED, Case
from failbench.grid import GridPoint
from failbench.trace import Trace


class Diverged(Exception):
    """Raised by RunContext.log when a logged value is NaN or inf; the runner records it."""

    def __init__(self, step: int, metrics: list[str]):
        super().__init__(f"non-finite {', '.join(metrics)} at step {step}")
        self.step = step
        self.metrics = metrics


LOGGED_POINTS = 100  # logged steps per run: the report's curves and the trace's loss checks


@dataclass
class RunContext:
    """What a case's training loop gets from the harness: the device and somewhere to log.

    `log(step, name=value, ...)` keeps step metrics (sent to MLflow in batches afterwards) and
    raises Diverged on the first non-finite value. `image(name, array)` keeps a picture, HxW or
    HxWx3 in [0, 1], logged as an artifact for the report. `trace` records the per-layer trace
    (harness/trace.py): `run.trace.watch(model)` once, or `run.trace.record(...)` at a due step.
    """

    device: torch.device
    seed: int
    history: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    images: dict[str, np.ndarray] = field(default_factory=dict)
    trace: Trace = field(default_factory=Trace)

    @classmethod
    def for_case(cls, case: Case, device: torch.device, seed: int) -> RunContext:
        """The context a grid point of `case` trains in: its trace carries the scalars it declares."""
        return cls(device=device, seed=seed, trace=Trace(scalars=case.scalars))

    @staticmethod
    def log_every(steps: int, points: int = LOGGED_POINTS) -> int:
        """The interval between logged steps of a run of `steps` updates: about `points` logged
        steps whatever the budget. Each logged step is one check of the trace's loss and accuracy
        rules (an "epoch" of the tools: harness/README.md, The trace), so every case logs alike."""
        return max(1, steps // points)

    def log(self, step: int, **metrics: float) -> None:
        values = {k: float(v) for k, v in metrics.items()}
        finite = {k: v for k, v in values.items() if math.isfinite(v)}
        self.history.append((step, finite))
        self.trace.on_log(step, finite)
        if len(finite) < len(values):
            raise Diverged(step, sorted(set(values) - set(finite)))

    def guard(self, step: int, **tensors: torch.Tensor) -> None:
        """Raise Diverged at the exact step a tensor stops being finite, between logged steps.
        (On a GPU this syncs, so call it where a step's cost allows.)"""
        bad = [k for k, t in tensors.items() if not bool(torch.isfinite(t).all())]
        if bad:
            self.history.append((step, {}))
            raise Diverged(step, bad)

    def image(self, name: str, array: Any) -> None:
        picture = np.asarray(array.detach().cpu() if torch.is_tensor(array) else array, dtype=np.float32)
        self.images[name] = np.clip(picture, 0.0, 1.0)

    def last_finite(self) -> dict[str, float]:
        merged: dict[str, float] = {}
        for _, values in self.history:
            merged.update(values)
        return merged


@dataclass
class RunResult:
    point: GridPoint
    config: Any
    metrics: dict[str, float]  # final metrics; diverged runs carry their last finite values
    verdict: str
    history: list[tuple[int, dict[str, float]]]
    images: dict[str, np.ndarray]
    seconds: float
    device: str
    threads: int
    diverged_at_step: int | None = None
    trace: Any = None  # the per-layer trace, a tidy pandas DataFrame (harness/trace.py)
    started_at: float = 0.0  # wall clock (time.time()) when training began: the MLflow run's start


def resolve_device(name: str) -> torch.device:
    """`auto` is CUDA when present, else CPU. Asking for CUDA without one is the caller's error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA device; use cpu or auto")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"unknown device {name!r}; choose from: auto, cpu, cuda")
    return torch.device(name)


def make_reproducible(seed: int, threads: int) -> None:
    # cuBLAS needs this workspace setting for deterministic matmuls (PyTorch reproducibility notes).
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # seeds CUDA too


def run_point(case: Case, point: GridPoint, device: torch.device, threads: int) -> RunResult:
    make_reproducible(point.seed, threads)
    config = point.config(case)
    run = RunContext.for_case(case, device, point.seed)
    diverged_at = None
    started_at, start = time.time(), time.perf_counter()
    try:
        metrics = {k: float(v) for k, v in case.train(config, run).items()}
        bad = [k for k, v in metrics.items() if not math.isfinite(v)]
        if bad:  # a final metric that is not finite is a divergence at the end of training
            raise Diverged(run.history[-1][0] if run.history else 0, bad)
    except Diverged as exc:
        diverged_at = exc.step
        metrics = run.last_finite()
        run.trace.diverged(exc.step)
    finally:
        run.trace.close()
    seconds = time.perf_counter() - start
    diverged = diverged_at is not None
    metrics["diverged"] = float(diverged)
    if diverged:
        metrics["diverged_at_step"] = float(diverged_at)
    verdict = case.verdict(metrics, diverged)
    assert not diverged or verdict == DIVERGED
    return RunResult(
        point=point,
        config=config,
        metrics=metrics,
        verdict=verdict,
        history=run.history,
        images=run.images,
        seconds=seconds,
        device=device.type,
        threads=threads,
        diverged_at_step=diverged_at,
        trace=run.trace.frame(),
        started_at=started_at,
    )
