from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from failbench.discovery import load_case

FIXTURE_CASES = Path(__file__).parent / "fixtures" / "cases"


def pytest_configure(config):
    """One torch thread a pytest-xdist worker (`make test` runs one worker per core): torch's default,
    a thread per core in every worker, oversubscribes the cores; two workers training the external
    loops side by side took 170 s with it, against 43 s for both one after the other."""
    import os

    if os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        torch.set_num_threads(1)


@pytest.fixture
def toy():
    return load_case("toy", FIXTURE_CASES)


@pytest.fixture(scope="session")
def blank_store(tmp_path_factory) -> Path:
    """An empty, migrated SQLite store, made once: MLflow's migrations cost ~5 s per new store."""
    from failbench.tracking import Tracker

    path = tmp_path_factory.mktemp("blank") / "mlflow.db"
    Tracker(f"sqlite:///{path}").client.search_experiments()
    return path


@pytest.fixture
def store_uri(tmp_path, monkeypatch, blank_store) -> str:
    """A fresh SQLite store in a temporary folder (a copy of the blank one); the working directory
    moves there too, so nothing a test does lands in the checkout."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    shutil.copy(blank_store, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def tracker(store_uri):
    from failbench.tracking import Tracker

    return Tracker(store_uri)


@pytest.fixture
def quick_expectations(tracker):
    """Runs a case's quick grid (or only `variants`, on `seeds` seeds) into the test's store, asserts
    that every expectation of what ran holds and that nothing drifted from the committed reference
    (reports/reference/quick.json: `failbench compare`'s thresholds, the table in the failure), and
    returns the expectation table for further checks."""
    import torch

    from failbench.analysis import evaluate, load_runs
    from failbench.compare import Side, compare, to_markdown
    from failbench.snapshot import default_path, read_snapshot
    from failbench.sweep import run_sweep

    def judge(name: str, variants: tuple[str, ...] | None = None, seeds: int | None = None, first_seed: int = 0):
        case = load_case(name)
        run_sweep(
            case,
            "quick",
            tracker,
            torch.device("cpu"),
            variants=variants,
            seeds=seeds,
            progress=False,
            first_seed=first_seed,
        )
        table = evaluate(case, load_runs(tracker, case, "quick"), "quick")
        if variants:
            table = table[table["variant"].isin(variants)]
        failed = table[~table["passed"]]
        assert failed.empty, "\n" + failed[["variant", "where", "expected", "observed"]].to_string()
        if first_seed:  # other seeds than the reference's: nothing to compare bit for bit
            return table
        reference = Side("reports/reference/quick.json", read_snapshot(default_path("quick"), [case], "quick"))
        fresh = Side("this run", load_runs(tracker, case, "quick").assign(case=name))
        drift = compare([case], reference, fresh)
        assert not drift.failed, (
            "drift from the reference (refresh it: reports/README.md, Regression tracking)\n" + to_markdown(drift)
        )
        return table

    return judge


def pytest_ignore_collect(collection_path, config):
    """Benchmarks are collected only by `make bench` (--benchmark-enable): they time whole
    sweeps, which the test suite has no business repeating."""
    if collection_path.name == "benchmarks" and not config.getoption("benchmark_enable"):
        return True
    return None
