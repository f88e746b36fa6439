"""`failbench restamp` writes the current code hash only where one seed per point re-runs bit for
bit, and leaves a snapshot whose results moved as it was, naming what moved."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from failbench.discovery import load_case
from failbench.identity import code_hash
from failbench.restamp import restamp, summary
from failbench.snapshot import write_snapshot
from failbench.sweep import run_sweep
from tests.conftest import FIXTURE_CASES


@pytest.fixture
def stale_toy(tracker, tmp_path):
    """A snapshot of the toy case, and `edit(old, new)`: the same case with its train() rewritten."""
    root = tmp_path / "cases"
    shutil.copytree(FIXTURE_CASES / "toy", root / "toy")
    load_case.cache_clear()
    case = load_case("toy", root)
    run_sweep(case, "quick", tracker, torch.device("cpu"), progress=False)
    path = tmp_path / "quick.json"
    write_snapshot(tracker, [case], "quick", path)

    def edit(old: str, new: str):
        source = root / "toy" / "case.py"
        assert old in source.read_text()
        source.write_text(source.read_text().replace(old, new))
        load_case.cache_clear()
        return load_case("toy", root)

    yield path, case, edit
    load_case.cache_clear()


def test_a_change_that_moves_no_float_is_restamped(stale_toy):
    path, before, edit = stale_toy
    old_hash = code_hash(before)
    after = edit(
        "for step in range(1, cfg.steps + 1):",
        "for step_number in range(1, cfg.steps + 1):\n        step = step_number",
    )
    assert code_hash(after) != old_hash
    runs_before = json.loads(path.read_text())["cases"]["toy"]["runs"]
    [item] = restamp(path, [after], progress=lambda _: None)
    # one seed of each variant at each axis point: 3 variants x 2 scales
    assert item.identical and item.points == 6 and "restamped" in summary(item)
    entry = json.loads(path.read_text())["cases"]["toy"]
    assert entry["code_hash"] == code_hash(after) and entry["restamped"]["from"] == old_hash
    assert entry["runs"] == runs_before  # the evidence itself is untouched
    [again] = restamp(path, [after], progress=lambda _: None)
    assert again.current and "already current" in summary(again)


def test_a_change_that_moves_a_result_is_not_restamped(stale_toy):
    path, _, edit = stale_toy
    written = path.read_text()
    after = edit("loss = loss * cfg.rate", "loss = loss * cfg.rate * 1.001")
    [item] = restamp(path, [after], progress=lambda _: None)
    assert not item.identical and item.moved and "NOT restamped" in summary(item)
    assert "loss" in item.moved[0]
    assert path.read_text() == written  # nothing written


def test_restamp_from_the_command_line_refuses_a_missing_snapshot(store_uri, tmp_path, capsys):
    from failbench.cli import main

    assert main(["restamp", "--snapshot", str(tmp_path / "nothere.json")]) == 2
    assert "no snapshot at" in capsys.readouterr().err


def test_a_changed_budget_makes_a_snapshot_stale_and_its_runs_uncounted(stale_toy):
    from failbench.evidence import profile_evidence
    from failbench.snapshot import read_document, stale_runs

    path, case, edit = stale_toy
    assert not any(stale_runs(case, read_document(path)["cases"]["toy"], "quick"))
    longer = edit('"quick": Profile(seeds=2, budget={"steps": 4})', '"quick": Profile(seeds=2, budget={"steps": 5})')
    assert code_hash(longer) == code_hash(case)  # a budget is a declaration: the code is the same
    assert all(stale_runs(longer, read_document(path)["cases"]["toy"], "quick"))
    evidence = profile_evidence([longer], "quick", [path])
    assert all(e.n == 0 and e.stale for e in evidence) and all(e.risk == 1.0 for e in evidence)
    [item] = restamp(path, [longer], progress=lambda _: None)
    assert not item.current and not item.identical  # 5 halvings are not 4: the bits moved
