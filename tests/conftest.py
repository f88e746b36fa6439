from __future__ import annotations

from pathlib import Path

import pytest

from harness.discovery import load_case

FIXTURE_CASES = Path(__file__).parent / "fixtures" / "cases"


@pytest.fixture
def toy():
    return load_case("toy", FIXTURE_CASES)


@pytest.fixture
def store_uri(tmp_path, monkeypatch) -> str:
    """A fresh SQLite store in a temporary folder; the working directory moves there too, so
    nothing a test does lands in the checkout."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


@pytest.fixture
def tracker(store_uri):
    from harness.tracking import Tracker

    return Tracker(store_uri)


def pytest_ignore_collect(collection_path, config):
    """Benchmarks are collected only by `make bench` (--benchmark-enable): they time whole
    sweeps, which the test suite has no business repeating."""
    if collection_path.name == "benchmarks" and not config.getoption("benchmark_enable"):
        return True
    return None
