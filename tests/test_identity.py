"""A run's identity holds what changes results and leaves out what does not (harness/identity.py):
both directions are pinned here, on a copy of the toy case edited one way at a time."""

from __future__ import annotations

import shutil

import pytest
import torch

from failbench import identity
from failbench.discovery import load_case
from failbench.identity import code_hash, environment, environment_hash, harness_modules, normalised_source
from tests.conftest import FIXTURE_CASES


@pytest.fixture
def copy_of_toy(tmp_path):
    """A private copy of the toy case; `edit(old, new)` rewrites its case.py and returns the reloaded case."""
    root = tmp_path / "cases"
    shutil.copytree(FIXTURE_CASES / "toy", root / "toy")
    path = root / "toy" / "case.py"

    def edit(old: str, new: str):
        text = path.read_text()
        assert old in text, f"{old!r} is not in the toy case"
        path.write_text(text.replace(old, new))
        load_case.cache_clear()
        return load_case("toy", root)

    load_case.cache_clear()
    yield load_case("toy", root), edit
    load_case.cache_clear()


@pytest.mark.parametrize(
    "old, new",
    [
        ('why="decays 10x per step"', 'why="ten times smaller each step"'),  # a fix's reason
        ('why="100 * 0.5**4 = 6.25", profiles=_BOTH)', 'why="reworded", profiles=("quick",))'),  # an expectation
        ('"A scalar that decays"', '"A decaying scalar"'),  # the title
        (
            'Threshold("loss", ">", 1.0, why="test")',
            'Threshold("loss", ">", 2.0, why="test")',
        ),  # the symptom: recomputed
        ("# a loss that needs 7 halvings", "# a comment that says something else"),
        ("    loss = torch.tensor(cfg.start", "\n    loss = torch.tensor(  cfg.start"),  # layout
        ('"""toy: a case small enough', '"""toy: a case tiny enough'),  # the docstring
    ],
)
def test_what_does_not_change_results_keeps_the_identity(copy_of_toy, old, new):
    case, edit = copy_of_toy
    before = code_hash(case)
    assert code_hash(edit(old, new)) == before


@pytest.mark.parametrize(
    "old, new",
    [
        ("loss = loss * cfg.rate", "loss = loss * cfg.rate * 1.0"),  # a line of the training loop
        ("rate: float = 0.5", "rate: float = 0.25"),  # a default
        ("run.log(step, loss=loss)", "run.log(step, loss=loss, doubled=2 * loss)"),  # what is logged
    ],
)
def test_what_changes_results_changes_the_identity(copy_of_toy, old, new):
    case, edit = copy_of_toy
    before = code_hash(case)
    assert code_hash(edit(old, new)) != before


def test_the_harness_code_a_point_runs_through_is_part_of_it(copy_of_toy, tmp_path, monkeypatch):
    case, _ = copy_of_toy
    assert {"runner", "probes"} <= set(harness_modules(case))
    assert not {"contract", "grid", "analysis", "cli", "tracking"} & set(harness_modules(case))
    harness = tmp_path / "harness"
    shutil.copytree(identity.HARNESS_DIR, harness, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(identity, "HARNESS_DIR", harness)
    before = code_hash(case)
    runner = harness / "runner.py"
    runner.write_text(runner.read_text() + "\n# a comment\n")
    assert code_hash(case) == before
    runner.write_text(runner.read_text().replace("torch.manual_seed(seed)", "torch.manual_seed(seed + 1)"))
    assert code_hash(case) != before


def test_a_helper_that_builds_expectations_is_a_declaration():
    text = "def _at(v):\n    return (Expectation(v),)\nE = (*_at('a'),)\ndef train(c):\n    return c\n"
    reworded = text.replace("Expectation(v)", "Expectation(v, why='x')").replace("'a'", "'b'")
    assert normalised_source(text) == normalised_source(reworded)
    assert "train" in normalised_source(text) and "_at" not in normalised_source(text)


def test_a_torch_upgrade_changes_the_environment(monkeypatch):
    env = environment()
    assert env["torch"] == torch.__version__ and len(env["lock"]) == 16
    assert environment_hash({**env, "torch": "2.99.0"}) != environment_hash(env)
    assert environment_hash(dict(env)) == environment_hash()


def test_every_real_case_has_a_stable_code_hash():
    case = load_case("relu_blowup")
    assert code_hash(case) == code_hash(case) and len(code_hash(case)) == 16
