"""Runs land in a temporary SQLite store with the right params, tags and metrics; resume skips
what finished; check judges what is stored; a bad store is refused in one line with nothing
written; a killed sweep's runs are closed by the next one."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch

from failbench import executors
from failbench.analysis import evaluate, load_runs, summary_table
from failbench.grid import flat_params
from failbench.identity import code_hash, environment_hash
from failbench.sweep import run_sweep

CPU = torch.device("cpu")
POINT_TAGS = {
    "case",
    "variant",
    "axes",
    "seed",
    "profile",
    "device",
    "threads",
    "torch_version",
    "git_commit",
    "code_hash",
    "env_hash",
    "config_hash",
    "point_hash",
    "verdict",
    "overrides",
}


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
    expected_params = {
        k: str(v)
        for k, v in flat_params(toy.config("fast", {"scale": float(kid.data.params["scale"])}, "quick")).items()
    }
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
    shares = summary_table(toy, runs)
    assert set(shares.columns) >= {"variant", "axis.scale", "symptom", "cured", "unlearned", "diverged"}
    assert shares["seeds"].sum() == 12 and (shares["symptom"].map(lambda s: s.n) == shares["seeds"]).all()


def test_check_fails_an_expectation_the_runs_contradict(tracker, toy):
    run_sweep(toy, "quick", tracker, CPU, progress=False)
    from failbench.contract import Expectation

    wrong = dataclasses.replace(
        toy, expectations=(Expectation("fast", "symptom", why="wrong on purpose", profiles=("quick",)),)
    )
    table = evaluate(wrong, load_runs(tracker, wrong, "quick"), "quick")
    assert not table["passed"].any() and table["observed"].iloc[0] == "4 cured"


def test_check_fails_when_a_variant_has_no_runs(tracker, toy):
    run_sweep(toy, "quick", tracker, CPU, variants=["baseline"], progress=False)
    table = evaluate(toy, load_runs(tracker, toy, "quick"), "quick").set_index("variant")
    assert table.loc["baseline", "passed"] and not table.loc["fast", "passed"]
    assert table.loc["fast", "observed"] == "no runs"


def test_pictures_land_beside_a_sqlite_store_whatever_the_working_directory(tmp_path, blank_store, toy, monkeypatch):
    from failbench.tracking import Tracker

    monkeypatch.chdir(tmp_path)  # MLflow's own default would put them in ./mlruns, here
    (tmp_path / "store").mkdir()
    shutil.copy(blank_store, tmp_path / "store" / "mlflow.db")
    tracker = Tracker(f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}")
    run_sweep(toy, "quick", tracker, CPU, variants=["fast"], seeds=1, progress=False)
    assert list((tmp_path / "store" / "mlruns" / "toy").rglob("square.png"))
    assert not (tmp_path / "mlruns").exists()


# ---- bad stores: one line, exit 2, nothing written ------------------------------------------


def _refused(argv, capsys) -> str:
    from failbench.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("failbench: error: ") and len(err.splitlines()) == 1, err
    return err


def _snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


@pytest.mark.parametrize("command", ["run", "check", "table", "report"])
def test_a_file_that_is_not_sqlite_is_refused(command, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.db").write_text("these are my notes, not a database\n" * 50)
    before = _snapshot(tmp_path)
    argv = [command, "relu_blowup", "--tracking-uri", f"sqlite:///{tmp_path / 'notes.db'}"]
    assert "is not a SQLite database" in _refused(argv, capsys)
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("command", ["run", "check", "report"])
def test_a_store_of_a_newer_mlflow_schema_is_refused(command, tmp_path, blank_store, capsys, monkeypatch):
    import sqlite3

    monkeypatch.chdir(tmp_path)
    store = tmp_path / "mlflow.db"
    shutil.copy(blank_store, store)
    with sqlite3.connect(store) as connection:  # what a future MLflow's migration leaves behind
        connection.execute("update alembic_version set version_num = 'f00dfacecafe'")
    connection.close()
    before = _snapshot(tmp_path)
    err = _refused([command, "relu_blowup", "--tracking-uri", f"sqlite:///{store}"], capsys)
    assert "newer than this MLflow" in err and "f00dfacecafe" in err
    assert _snapshot(tmp_path) == before


def test_a_sqlite_file_that_is_not_an_mlflow_store_is_refused(tmp_path, capsys, monkeypatch):
    import sqlite3

    monkeypatch.chdir(tmp_path)
    with sqlite3.connect(tmp_path / "other.db") as connection:
        connection.execute("create table photos (name text)")
    connection.close()
    before = _snapshot(tmp_path)
    err = _refused(["run", "relu_blowup", "--tracking-uri", f"sqlite:///{tmp_path / 'other.db'}"], capsys)
    assert "not an MLflow store" in err
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("command", ["check", "table", "report", "ui"])
def test_a_command_that_reads_never_creates_a_store(command, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    err = _refused([command, "--tracking-uri", f"sqlite:///{tmp_path / 'typo.db'}"], capsys)
    assert "no MLflow store at" in err and "typo.db" in err
    assert list(tmp_path.iterdir()) == []
    _refused([command], capsys)  # the default ./mlflow.db, absent
    assert list(tmp_path.iterdir()) == []


def test_a_killed_sweeps_running_runs_are_marked_killed_by_the_next_run(tracker, toy):
    """What kill -9 leaves: the parent and the child being written stay RUNNING. The next sweep of
    the case marks them KILLED; a sweep whose process still runs is left alone."""
    import os
    import socket
    import subprocess

    experiment_id = tracker.experiment_id("toy")
    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid now names no process
    here = {"case": "toy", "profile": "quick", "host": socket.gethostname()}
    killed_parent = tracker.client.create_run(experiment_id, tags={**here, "sweep": "true", "pid": str(gone.pid)})
    half_written = tracker.client.create_run(
        experiment_id, tags={"mlflow.parentRunId": killed_parent.info.run_id, "variant": "baseline"}
    )
    live_parent = tracker.client.create_run(experiment_id, tags={**here, "sweep": "true", "pid": str(os.getpid())})
    live_child = tracker.client.create_run(experiment_id, tags={"mlflow.parentRunId": live_parent.info.run_id})

    summary = run_sweep(toy, "quick", tracker, CPU, progress=False)
    assert summary.ran == 12, "the half-written child was never counted as finished"
    status = {r.info.run_id: r.info.status for r in tracker.runs(experiment_id)}
    assert status[killed_parent.info.run_id] == status[half_written.info.run_id] == "KILLED"
    assert status[live_parent.info.run_id] == status[live_child.info.run_id] == "RUNNING"
    assert len(load_runs(tracker, toy, "quick")) == 12


def test_every_logged_step_is_in_the_history_artifact_and_the_ui_curve_is_thinned(tracker, toy):
    from failbench.tracking import CURVE_POINTS

    long = dataclasses.replace(
        toy, profiles={"quick": dataclasses.replace(toy.profiles["quick"], budget={"steps": 200})}
    )
    run_sweep(long, "quick", tracker, CPU, variants=["baseline"], seeds=1, progress=False)
    run = load_runs(tracker, long, "quick").iloc[0]
    [(metric, steps, values)] = tracker.history(run["run_id"], ("loss", "absent"))
    assert metric == "loss" and steps == list(range(1, 201))
    assert values[-1] == pytest.approx(run["loss"])
    curve = tracker.client.get_metric_history(run["run_id"], "loss")
    assert len(curve) == CURVE_POINTS and curve[0].step == 1 and curve[-1].step == 200


def test_the_experiment_opens_as_model_training_with_a_runs_view(tracker, toy):
    import json

    run_sweep(toy, "quick", tracker, CPU, variants=["fast"], seeds=1, progress=False)
    experiment = tracker.client.get_experiment_by_name("toy")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    view = json.loads(experiment.tags["mlflow.sharedViewState.failbench"])
    assert {"tags.`variant`", "tags.`verdict`", "params.`scale`", "tags.`seed`"} <= set(view["selectedColumns"])
    [(name, link)] = tracker.ui_links("http://127.0.0.1:5000")
    assert name == "toy" and link.endswith(
        f"/#/experiments/{experiment.experiment_id}/runs?workflowType=machine_learning&viewStateShareKey=failbench"
    )


def test_one_function_opens_a_store_and_readers_never_write(tmp_path, tracker, toy):
    """tracking.open_store is the only door: no other module builds a Tracker or an MlflowClient,
    and a store opened to read is neither made nor switched to WAL."""
    import re
    from pathlib import Path

    from failbench.tracking import TrackingError, open_store

    harness = Path(__file__).resolve().parent.parent / "harness"
    doors = [
        f"{path.relative_to(harness)}:{n}"
        for path in sorted(harness.rglob("*.py"))
        if path.name != "tracking.py"
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\b(Tracker|MlflowClient)\(", line)
    ]
    assert doors == []
    missing = tmp_path / "none.db"
    with pytest.raises(TrackingError, match="no MLflow store"):
        open_store(f"sqlite:///{missing}")
    assert not missing.exists()
    run_sweep(toy, "quick", tracker, torch.device("cpu"), progress=False, variants=["baseline"], seeds=1)
    tracker.flush()
    reader = open_store(tracker.uri)
    assert not reader._wal and len(load_runs(reader, toy, "quick")) > 0


def test_a_yes_no_metric_is_counted_with_its_interval_not_given_a_median(toy):
    """A 0/1 flag (slow_conv_mnist's blew_up, identity_filter's collapsed) reads as k/n in a table;
    a run without the metric (a diverged one) is left out of its count."""
    import math

    import pandas as pd

    from failbench.analysis import to_markdown

    runs = pd.DataFrame(
        {
            "variant": ["baseline"] * 4,
            "verdict": ["symptom"] * 4,
            "flag": [1.0, 0.0, 1.0, math.nan],
            "loss": [0.5, 1.0, 2.0, 3.0],
        }
    )
    table = summary_table(toy, runs, ("flag", "loss"))
    assert (table.loc[0, "flag"].k, table.loc[0, "flag"].n) == (2, 3) and table.loc[0, "median loss"] == 1.5
    assert "| flag (95% CI) |" in to_markdown(table) and "2/3 (67%" in to_markdown(table)


def test_a_snapshot_keeps_one_seed_range_of_a_store_that_holds_two(tracker, toy, tmp_path):
    """`failbench snapshot --first-seed N`: a held-out range written by itself from a shared store."""
    import json

    from failbench.snapshot import write_snapshot

    run_sweep(toy, "quick", tracker, CPU, progress=False, variants=["baseline"], seeds=2)
    run_sweep(toy, "quick", tracker, CPU, progress=False, variants=["baseline"], seeds=2, first_seed=100)
    path = tmp_path / "heldout.json"
    write_snapshot(tracker, [toy], "quick", path, first_seed=100, seeds=2)
    seeds = {run["seed"] for run in json.loads(path.read_text())["cases"][toy.name]["runs"]}
    assert seeds == {100, 101}
    write_snapshot(tracker, [toy], "quick", path)  # no range: every run of the store
    assert {run["seed"] for run in json.loads(path.read_text())["cases"][toy.name]["runs"]} == {0, 1, 100, 101}
