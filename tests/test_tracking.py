"""Runs land in a temporary SQLite store with the right params, tags and metrics; resume skips
what finished; check judges what is stored."""
from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch

from harness import executors
from harness.analysis import evaluate, load_runs, verdict_shares
from harness.identity import code_hash, environment_hash
from harness.grid import flat_params
from harness.sweep import run_sweep

CPU = torch.device("cpu")
POINT_TAGS = {"case", "variant", "axes", "seed", "profile", "device", "threads", "torch_version",
              "git_commit", "code_hash", "env_hash", "config_hash", "point_hash", "verdict", "overrides"}


def children(tracker, name):
    experiment_id = tracker.experiment_id(name, create=False)
    runs = tracker.runs(experiment_id)
    parents = [r for r in runs if r.data.tags.get("sweep") == "true"]
    return parents, [r for r in runs if r.data.tags.get("sweep") != "true"]


def test_a_sweep_lands_one_child_run_per_grid_point(tracker, toy):
    summary = run_sweep(toy, "quick", tracker, CPU, progress=False)
    assert (summary.ran, summary.skipped, summary.points) == (12, 0, 12)
    parents, kids = children(tracker, "toy")
    assert len(parents) == 1 and len(kids) == 12
    assert {k.data.tags["mlflow.parentRunId"] for k in kids} == {parents[0].info.run_id}
    assert all(k.info.status == "FINISHED" for k in kids)
    kid = next(k for k in kids if k.data.tags["variant"] == "fast")
    assert POINT_TAGS <= set(kid.data.tags)
    assert kid.data.tags["code_hash"] == code_hash(toy)
    assert kid.data.tags["env_hash"] == environment_hash()
    assert kid.data.tags["torch_version"] == torch.__version__
    expected_params = {k: str(v) for k, v in flat_params(toy.config("fast", {"scale": float(kid.data.params["scale"])}, "quick")).items()}
    assert {k: v for k, v in kid.data.params.items() if k != "variant"} == expected_params
    assert kid.data.params["rate"] == "0.1"
    history = tracker.client.get_metric_history(kid.info.run_id, "loss")
    assert [m.step for m in history] == [1, 2, 3, 4]
    assert kid.data.metrics["final/loss"] == pytest.approx(history[-1].value)
    artifacts = [a.path for a in tracker.client.list_artifacts(kid.info.run_id, "images")]
    assert artifacts == ["images/square.png"]


def test_diverged_point_is_tagged_with_its_step(tracker, toy):
    run_sweep(toy, "quick", tracker, CPU, variants=["blowup"], seeds=1, progress=False)
    _, kids = children(tracker, "toy")
    assert {k.data.tags["verdict"] for k in kids} == {"diverged"}
    assert {k.data.tags["diverged_at_step"] for k in kids} == {"3"}


def test_resume_skips_finished_points_and_force_reruns_them(tracker, toy):
    run_sweep(toy, "quick", tracker, CPU, progress=False)
    again = run_sweep(toy, "quick", tracker, CPU, progress=False)
    assert (again.ran, again.skipped) == (0, 12)
    other_threads = run_sweep(toy, "quick", tracker, CPU, threads=2, progress=False)
    assert other_threads.ran == 12, "thread count is part of a point's identity"
    judged = load_runs(tracker, toy, "quick")
    assert len(judged) == 12 and set(judged["threads"]) == {"2"}, "the newest run speaks for its point"
    forced = run_sweep(toy, "quick", tracker, CPU, force=True, progress=False)
    assert forced.ran == 12


def test_an_interrupted_sweep_resumes_where_it_stopped(tracker, toy, monkeypatch):
    real_run_point, calls = executors.run_point, []

    def dies_on_the_fifth(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt  # what Ctrl-C or a killed `make all` leaves behind
        return real_run_point(*args, **kwargs)

    monkeypatch.setattr(executors, "run_point", dies_on_the_fifth)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(toy, "quick", tracker, CPU, progress=False)
    monkeypatch.setattr(executors, "run_point", real_run_point)
    resumed = run_sweep(toy, "quick", tracker, CPU, progress=False)
    assert (resumed.ran, resumed.skipped) == (8, 4)
    parents, kids = children(tracker, "toy")
    assert sorted(p.info.status for p in parents) == ["FINISHED", "KILLED"]
    assert len(kids) == 12


def test_edited_code_is_never_mixed_with_old_results(tracker, toy, tmp_path):
    run_sweep(toy, "quick", tracker, CPU, progress=False)
    edited_folder = tmp_path / "edited" / "toy"
    shutil.copytree(toy.folder, edited_folder)
    text = (edited_folder / "case.py").read_text()
    (edited_folder / "case.py").write_text(text.replace("loss = loss * cfg.rate", "loss = cfg.rate * loss"))
    edited = dataclasses.replace(toy, folder=edited_folder)
    assert load_runs(tracker, edited, "quick").empty
    assert run_sweep(edited, "quick", tracker, CPU, progress=False).ran == 12


def test_check_judges_the_stored_runs(tracker, toy):
    run_sweep(toy, "quick", tracker, CPU, progress=False)
    runs = load_runs(tracker, toy, "quick")
    assert len(runs) == 12 and set(runs["axis.scale"]) == {1.0, 2.0}
    table = evaluate(toy, runs, "quick")
    assert list(table["variant"]) == ["baseline", "fast", "blowup"]
    assert table["passed"].all() and (table["seeds"] == 4).all()
    shares = verdict_shares(runs)
    assert set(shares.columns) >= {"variant", "axis.scale", "symptom", "healthy", "diverged"}


def test_check_fails_an_expectation_the_runs_contradict(tracker, toy):
    run_sweep(toy, "quick", tracker, CPU, progress=False)
    from harness.contract import Expectation

    wrong = dataclasses.replace(toy, expectations=(Expectation("fast", "symptom", why="wrong on purpose", profiles=("quick",)),))
    table = evaluate(wrong, load_runs(tracker, wrong, "quick"), "quick")
    assert not table["passed"].any() and table["observed"].iloc[0] == "4 healthy"


def test_check_fails_when_a_variant_has_no_runs(tracker, toy):
    run_sweep(toy, "quick", tracker, CPU, variants=["baseline"], progress=False)
    table = evaluate(toy, load_runs(tracker, toy, "quick"), "quick").set_index("variant")
    assert table.loc["baseline", "passed"] and not table.loc["fast", "passed"]
    assert table.loc["fast", "observed"] == "no runs"


def test_pictures_land_beside_a_sqlite_store_whatever_the_working_directory(tmp_path, blank_store, toy,
                                                                            monkeypatch):
    from harness.tracking import Tracker

    monkeypatch.chdir(tmp_path)  # MLflow's own default would put them in ./mlruns, here
    (tmp_path / "store").mkdir()
    shutil.copy(blank_store, tmp_path / "store" / "mlflow.db")
    tracker = Tracker(f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    run_sweep(toy, "quick", tracker, CPU, variants=["fast"], seeds=1, progress=False)
    assert list((tmp_path / "store" / "mlruns" / "toy").rglob("square.png"))
    assert not (tmp_path / "mlruns").exists()
