"""Contract tests over every discovered case: discovery is the one list, so a new case folder is
tested the moment it exists."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from failbench.contract import BASELINE
from failbench.discovery import case_names, load_case
from failbench.runner import Diverged, RunContext, make_reproducible
from failbench.snapshot import default_path
from failbench.stats import THIN_SEEDS

CASES = case_names()


def test_there_are_cases():
    assert "relu_blowup" in CASES


@pytest.mark.parametrize("name", CASES)
def test_case_identity_and_readme(name):
    case = load_case(name)
    assert case.name == name == case.folder.name
    readme = case.folder / "README.md"
    assert readme.is_file(), f"cases/{name}/README.md is missing"
    # the README cites the post with the very words of case.post (line breaks aside: Markdown wraps)
    assert " ".join(case.post.split()) in " ".join(readme.read_text().split()), "the README must cite the post"
    assert set(case.profiles) >= {"quick", "full"}


@pytest.mark.parametrize("name", CASES)
def test_each_fix_changes_one_thing(name):
    case = load_case(name)
    names = [f.name for f in case.fixes]
    assert len(names) == len(set(names)) and BASELINE not in names
    by_name = {f.name: f for f in case.fixes}
    for fix in case.fixes:
        assert fix.why.strip(), f"{fix.name} says nothing of why it should work"
        assert case.config(fix.name) != case.baseline, f"{fix.name} changes nothing"
        for key, value in fix.change.items():
            assert getattr(case.baseline, key) != value, f"{fix.name}: {key} is already {value!r}"
        if fix.combines:
            union = {}
            for part in fix.combines:
                union.update(by_name[part].change)
            assert dict(fix.change) == union, f"{fix.name} is not exactly the union of {fix.combines}"
        else:
            assert len(fix.change) == 1, f"{fix.name} changes {sorted(fix.change)}: one change per fix"


@pytest.mark.parametrize("name", CASES)
def test_fixes_axes_and_budgets_touch_different_fields(name):
    case = load_case(name)
    fix_keys = {k for f in case.fixes for k in f.change}
    budget_keys = {k for p in case.profiles.values() for k in p.budget} | set(case.smoke_budget)
    for profile in case.profiles.values():
        assert set(profile.variant_budget) <= set(case.variants), "a budget for a variant the case lacks"
        assert {k for b in profile.variant_budget.values() for k in b} <= budget_keys, "a variant budget is a budget"
    assert not fix_keys & set(case.axes), "a nuisance axis hidden inside a fix"
    assert not fix_keys & budget_keys, "a profile may change budgets, never a variant's meaning"
    assert not set(case.axes) & budget_keys
    for profile in case.profiles.values():  # a profile may run fewer axis values, never others
        for axis, values in profile.axes.items():
            assert axis in case.axes and set(values) <= set(case.axes[axis])
        assert set(profile.variants) <= set(case.variants)
    for fix in case.fixes:  # so may a fix that makes an axis moot, and its expectations stay inside them
        for axis, values in fix.axes.items():
            assert axis in case.axes and set(values) <= set(case.axes[axis]), f"{fix.name}: {axis}"
        for e in (e for e in case.expectations if e.variant == fix.name):
            assert all(e.where.get(k, values[0]) in values for k, values in fix.axes.items()), e
    for profile in case.profiles:  # unknown keys raise in dataclasses.replace
        for variant in case.variants:
            case.config(variant, profile=profile)


def test_an_unknown_config_key_fails_loudly():
    case = load_case("relu_blowup")
    with pytest.raises(TypeError):
        dataclasses.replace(case.baseline, no_such_field=1)


@pytest.mark.parametrize("name", CASES)
def test_expectations_name_real_variants_and_axes(name):
    case = load_case(name)
    assert case.expectations, "a case without expectations checks nothing"
    assert any(e.variant == BASELINE for e in case.expectations)
    for exp in case.expectations:
        assert exp.variant in case.variants
        assert set(exp.profiles) <= set(case.profiles)
        for profile in exp.profiles:  # the axes of each profile it is judged on, explorations included
            axes = {**case.axes, **case.profiles[profile].explores}
            assert set(exp.where) <= set(axes), (exp, profile)
            for axis, value in exp.where.items():
                assert value in axes[axis], (exp, profile)


def _smoke_points(name):
    case = load_case(name)
    axes = {k: v[0] for k, v in case.axes.items()}
    return [(name, v, axes) for v in case.variants]


@pytest.mark.parametrize(
    "name,variant,axes", [p for n in CASES for p in _smoke_points(n)], ids=lambda x: x if isinstance(x, str) else ""
)
def test_every_variant_runs_a_few_steps_on_cpu(name, variant, axes):
    case = load_case(name)
    make_reproducible(0, 1)
    config = case.config(variant, axes, overrides=case.smoke_budget)
    run = RunContext.for_case(case, torch.device("cpu"), seed=0)
    try:
        metrics = case.train(config, run)
    except Diverged:
        assert run.history, "a divergence must come with the step it happened at"
        return
    assert metrics, "train returned no final metrics"
    assert all(math.isfinite(v) for v in metrics.values()), f"non-finite final metrics {metrics}"
    assert run.history, "no step metrics were logged"
    assert set(case.key_metrics) <= set(run.last_finite()), "a key metric the report plots is never logged"
    assert set(case.scalars.values()) <= set(run.last_finite()), "a declared trace scalar is never logged"
    assert set(case.pictures) <= set(run.images), "a picture the report shows is never logged"
    if variant == BASELINE:  # what the update-ratio rules read: every case's loop reports its updates
        assert "upd_ratio" in {row[4] for row in run.trace.rows}, "the trace carries no weight update"


@pytest.mark.parametrize("name", CASES)
def test_every_judged_point_runs_at_least_ten_seeds_on_quick(name):
    """cases/README.md: at least 10 seeds per judged point on quick; 9/9 seeds still leave 70-100%."""
    case = load_case(name)
    assert case.profiles["quick"].seeds >= THIN_SEEDS


@pytest.mark.parametrize("name", CASES)
def test_every_case_declares_its_loss_for_the_trace(name):
    assert "loss" in load_case(name).scalars, "Case.scalars names the logged loss the diagnosis rules read"


def test_a_case_folder_without_init_is_refused(tmp_path, monkeypatch):
    from failbench import discovery

    (tmp_path / "orphan").mkdir()
    (tmp_path / "orphan" / "case.py").write_text("CASE = None\n")
    monkeypatch.setattr(discovery, "CASES_DIR", tmp_path)
    with pytest.raises(discovery.CaseError, match="no __init__.py"):
        discovery.load_case.__wrapped__("orphan", tmp_path)


@pytest.mark.parametrize("name", CASES)
def test_every_expectation_names_profiles_with_a_committed_snapshot_of_the_case(name):
    """No expectation without its runs: a claim about a profile stands on that profile's snapshot
    (reports/reference/<profile>.json), which a user can regenerate and check."""
    case = load_case(name)
    for profile in sorted({p for e in case.expectations for p in e.profiles}):
        path = default_path(profile)
        assert path.is_file(), f"{name} claims results on {profile!r}, but {path.name} is not committed"
        assert name in json.loads(path.read_text())["cases"], f"{path.name} holds no runs of {name}"


def test_a_tradeoff_names_two_metrics():
    case = load_case("blurry_inpainting")
    with pytest.raises(TypeError, match="two final metrics"):
        dataclasses.replace(case, tradeoff=("psnr_db",))


@pytest.mark.parametrize("name", CASES)
def test_an_exploration_never_shifts_a_fix_s_meaning(name):
    """An exploration profile (`Profile.explores`) varies config fields the post leaves open (or a
    declared axis past its declared values: identity_filter's rates between its two constants) on the
    baseline, and on a fix only where it explores fields the fix does not set (blurry_inpainting's
    U-Net at other widths): a fix's name keeps meaning its change."""
    case = load_case(name)
    fields = {f.name for f in dataclasses.fields(case.baseline)}
    for profile_name, profile in case.profiles.items():
        if not profile.explores:
            continue
        assert set(profile.explores) <= fields, profile_name
        assert profile.variants and profile.variants[0] == BASELINE, profile_name
        for variant in profile.variants[1:]:
            assert not set(profile.explores) & set(case.fix(variant).change), (profile_name, variant)


def test_a_right_diagnosis_names_divergence_or_the_case_s_class_where_its_mechanism_holds():
    identity = load_case("identity_filter")
    assert identity.diagnosis_class("diverged", {}) == "exploding/divergence"
    assert identity.diagnosis_class("symptom", {"open_paths": 0.02}) == "saturation"
    assert identity.diagnosis_class("symptom", {"open_paths": 0.99}) is None  # a slow start, not the halt
    assert identity.diagnosis_class("cured", {"open_paths": 0.02}) is None
    relu = load_case("relu_blowup")
    assert relu.mechanism is None and relu.diagnosis_class("symptom", {}) == relu.failure_class
