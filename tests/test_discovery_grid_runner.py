from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from failbench.contract import DIVERGED, Expectation, Profile
from failbench.discovery import CaseError, case_names, discover, load_case
from failbench.grid import expand
from failbench.identity import config_hash, point_hash
from failbench.runner import resolve_device, run_point
from tests.conftest import FIXTURE_CASES


def test_discovery_finds_the_fixture_case(toy):
    assert case_names(FIXTURE_CASES) == ["toy"]
    assert toy.name == "toy" and toy.variants == ("baseline", "fast", "blowup")


def test_a_case_that_fails_to_import_is_an_error_not_a_skip(tmp_path):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "case.py").write_text("import no_such_module_anywhere\n")
    with pytest.raises(CaseError, match="broken/case.py failed to import: ModuleNotFoundError"):
        discover(tmp_path)


def test_a_case_without_CASE_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "case.py").write_text("X = 1\n")
    with pytest.raises(CaseError, match="defines no CASE"):
        load_case("empty", tmp_path)


def test_an_unknown_case_names_the_choices():
    with pytest.raises(CaseError, match="choose from: .*relu_blowup"):
        load_case("no_such_case")


def test_grid_is_variants_by_axes_by_seeds(toy):
    points = expand(toy, "quick")
    assert len(points) == 3 * 2 * 2
    assert {p.variant for p in points} == set(toy.variants)
    assert len(set(points)) == len(points)
    assert len(expand(toy, "full", variants=["fast"], seeds=5)) == 1 * 2 * 5
    assert {p.axes_dict["scale"] for p in expand(toy, "quick", where={"scale": 2.0})} == {2.0}


def test_a_profile_may_run_fewer_axis_values(toy):
    cheap = dataclasses.replace(
        toy, profiles={**toy.profiles, "quick": dataclasses.replace(toy.profiles["quick"], axes={"scale": (2.0,)})}
    )
    assert {p.axes_dict["scale"] for p in expand(cheap, "quick")} == {2.0}
    assert len(expand(cheap, "full", seeds=1)) == len(expand(toy, "full", seeds=1))


def test_an_exploration_adds_its_own_axes_on_its_variants_only(toy):
    explore = Profile(seeds=2, explores={"rate": (0.25, 0.75)}, variants=("baseline",))
    case = dataclasses.replace(toy, profiles={**toy.profiles, "explore_rate": explore})
    points = expand(case, "explore_rate")
    assert {p.variant for p in points} == {"baseline"}
    assert {(p.axes_dict["rate"], p.axes_dict["scale"]) for p in points} == {
        (r, s) for r in (0.25, 0.75) for s in toy.axes["scale"]
    }
    assert {p.config(case).rate for p in points} == {0.25, 0.75}
    assert not any("rate" in p.axes_dict for p in expand(case, "quick"))  # only on its own profile


def test_a_fix_that_makes_an_axis_moot_runs_at_its_values_only(toy):
    fast = dataclasses.replace(toy.fix("fast"), axes={"scale": (2.0,)})
    case = dataclasses.replace(toy, fixes=tuple(fast if f.name == "fast" else f for f in toy.fixes))
    points = expand(case, "quick", seeds=1)
    assert {p.axes_dict["scale"] for p in points if p.variant == "fast"} == {2.0}
    assert {p.axes_dict["scale"] for p in points if p.variant == "baseline"} == {1.0, 2.0}
    assert len(points) == len(expand(toy, "quick", seeds=1)) - 1


def test_first_seed_chooses_another_range(toy):
    assert {p.seed for p in expand(toy, "quick")} == {0, 1}
    assert {p.seed for p in expand(toy, "quick", first_seed=100)} == {100, 101}
    assert {p.seed for p in expand(toy, "quick", seeds=3, first_seed=7)} == {7, 8, 9}


def test_config_layers_fix_axes_budget_and_overrides(toy):
    point = expand(toy, "full", variants=["fast"], where={"scale": 2.0}, overrides={"start": 7.0})[0]
    config = point.config(toy)
    assert (config.rate, config.scale, config.steps, config.start) == (0.1, 2.0, 8, 7.0)


def test_point_identity_covers_seed_threads_device_code_and_environment(toy):
    config = toy.config("baseline")
    base = point_hash(config, 0, "cpu", 1, "code", "env")
    assert base == point_hash(config, 0, "cpu", 1, "code", "env")
    assert (
        len(
            {
                base,
                point_hash(config, 1, "cpu", 1, "code", "env"),
                point_hash(config, 0, "cpu", 2, "code", "env"),
                point_hash(config, 0, "cuda", 1, "code", "env"),
                point_hash(config, 0, "cpu", 1, "edited", "env"),
                point_hash(config, 0, "cpu", 1, "code", "torch 2.14"),
            }
        )
        == 6
    )
    assert config_hash(config) != config_hash(toy.config("fast"))


def test_same_seed_same_metrics_other_seed_other_metrics(toy):
    a, b, c = (run_point(toy, p, torch.device("cpu"), 1) for p in [expand(toy, "quick")[i] for i in (0, 0, 1)])
    assert a.metrics == b.metrics
    assert a.metrics["loss"] != c.metrics["loss"]


def test_divergence_is_recorded_with_its_step_and_last_finite_values(toy):
    point = expand(toy, "quick", variants=["blowup"], seeds=1)[0]
    result = run_point(toy, point, torch.device("cpu"), 1)
    assert result.verdict == DIVERGED
    assert result.diverged_at_step == 3
    assert result.metrics["diverged"] == 1.0 and result.metrics["diverged_at_step"] == 3.0
    # the last finite loss (step 2: 100 * 0.25) is kept, never filled in past the divergence
    assert math.isclose(result.metrics["loss"], 25.0, rel_tol=1e-2)
    assert [s for s, _ in result.history] == [1, 2, 3] and result.history[-1][1] == {}


def test_verdicts_follow_the_symptom(toy):
    results = {
        p.variant: run_point(toy, p, torch.device("cpu"), 1)
        for p in expand(toy, "quick", seeds=1, where={"scale": 1.0})
    }
    assert results["baseline"].verdict == "symptom"
    assert results["fast"].verdict == "cured"


def test_device_auto_and_bad_devices():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="choose from"):
        resolve_device("tpu")


def test_expectation_rejects_unknown_verdicts():
    with pytest.raises(ValueError):
        Expectation("baseline", "broken", why="", profiles=("quick",))
    assert Expectation("baseline", ("symptom", "unlearned"), why="", profiles=("quick",)).shows == (
        "symptom",
        "unlearned",
    )
