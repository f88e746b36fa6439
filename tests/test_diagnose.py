"""`failbench.watch` on ordinary user models, and `failbench diagnose` on their traces: what it finds,
what it refuses, and "none" on healthy trainings from outside the suite."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import failbench
from failbench.cli import main
from tests import healthy_runs


class Mixed(nn.Module):
    """Activations as functions inside forward, as a module after dropout, and none at the head;
    a residual block as torchvision writes it (one in-place nn.ReLU used twice, BN between)."""

    def __init__(self):
        super().__init__()
        self.stem, self.block = nn.Conv2d(1, 4, 3, padding=1), healthy_runs.Block(4)
        self.fc, self.drop, self.act, self.head = nn.Linear(4, 6), nn.Dropout(0.1), nn.Sigmoid(), nn.Linear(6, 3)

    def forward(self, x):
        x = F.max_pool2d(torch.tanh(self.stem(x)), 2)
        x = self.block(x).mean((2, 3))
        return self.head(self.act(self.drop(self.fc(x))))


def _train(model, optimizer, steps=25, device="cpu", x=None):
    model.to(device)
    rec = failbench.watch(model, optimizer)
    torch.manual_seed(0)
    x = (torch.randn(8, 1, 6, 6) if x is None else x).to(device)
    y = torch.randint(0, 3, (8,), device=device)
    for step in range(steps):
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        rec.log(step, loss=loss)
    rec.close()
    return rec.frame()


def _layers(frame: pd.DataFrame) -> list[list[str]]:
    return frame[frame["layer"] != ""].drop_duplicates("layer")[["layer", "activation"]].values.tolist()


def test_watch_finds_each_layers_activation_however_the_model_applies_it():
    model = Mixed()
    frame = _train(model, torch.optim.SGD(model.parameters(), lr=0.1))
    assert _layers(frame) == [
        ["stem", "tanh"],  # torch.tanh inside forward
        ["block.conv1", "relu"],  # through BatchNorm to an in-place nn.ReLU
        ["block.conv2", "relu"],  # through BatchNorm and the residual add to the same nn.ReLU
        ["fc", "sigmoid"],  # through Dropout to an nn.Sigmoid module
        ["head", "none"],
    ]
    stats = frame[frame["step"] == 0].groupby("layer")["stat"].apply(set)
    # tanh read as a saturating layer (its saturation statistics), ReLU as a rectifier (its activity)
    assert {"sat_flat", "unit_sat_ro"} <= stats["stem"] and "unit_activity" not in stats["stem"]
    assert "unit_activity" in stats["block.conv1"] and "sat_flat" not in stats["block.conv1"]


def test_watch_keeps_the_pre_activation_of_an_in_place_relu():
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(inplace=True), nn.Linear(16, 3))
    frame = _train(model, torch.optim.SGD(model.parameters(), lr=0.1), x=torch.randn(8, 4))
    first = frame[(frame["layer"] == "0") & (frame["step"] == 0)].set_index("stat")["value"]
    assert first["pre_mean"] < first["out_mean"]  # pre-activations are negative too; a clobbered copy would equal


@pytest.mark.parametrize("make", [torch.optim.SGD, torch.optim.Adam, torch.optim.RMSprop, torch.optim.AdamW])
def test_watch_records_updates_under_any_torch_optimizer(make):
    model = Mixed()
    frame = _train(model, make(model.parameters(), lr=1e-2))
    stats = set(frame["stat"])
    assert {"upd_ratio", "upd_log_period", "g_rate_min", "loss"} <= stats


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_watch_on_cuda():
    model = Mixed()
    frame = _train(model, torch.optim.Adam(model.parameters(), lr=1e-3), device="cuda")
    assert _layers(frame)[0] == ["stem", "tanh"] and "upd_ratio" in set(frame["stat"])


def test_save_writes_parquet_or_an_mlflow_artifact(tmp_path, monkeypatch):
    import mlflow

    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = failbench.watch(model, opt)
    for step in range(5):
        loss = F.cross_entropy(model(torch.randn(8, 4)), torch.randint(0, 3, (8,)))
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec.log(step, loss=loss, accuracy=0.5)
    assert pd.read_parquet(rec.save(tmp_path / "t.parquet")).equals(rec.frame())
    with pytest.raises(RuntimeError, match="active MLflow run"):
        rec.save()
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    monkeypatch.chdir(tmp_path)
    with mlflow.start_run() as run:
        rec.save()
    assert main(["--tracking-uri", uri, "diagnose", f"mlflow:{run.info.run_id}"]) in (0, 1)


def _dead_relu_trace(path):
    """A ReLU net whose hidden units are all dead from the start: every pre-activation < 0."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))
    with torch.no_grad():
        model[0].bias.fill_(-50.0)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    rec = failbench.watch(model, opt)
    x, y = torch.rand(64, 8), torch.randint(0, 2, (64,))
    for step in range(200):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 2 == 0:
            rec.log(step, loss=loss)
    return rec.save(path)


def test_diagnose_names_a_dead_relu_net_and_exits_1(tmp_path, capsys):
    path = _dead_relu_trace(tmp_path / "dead.parquet")
    assert main(["diagnose", str(path)]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith(f"{path} (steps 0-198): dead_relu, as in the suite's relu_blowup")
    assert "cured it in the suite:" in out and "published tools on this trace:" in out
    assert main(["diagnose", str(path), "--json"]) == 1
    found = json.loads(capsys.readouterr().out)
    assert found["failures"][0]["mechanism"] == "dead_relu" and found["failures"][0]["cured_by"]


@pytest.mark.parametrize(
    "write, message",
    [
        (None, "no such trace file"),
        (lambda p: p.write_text("not parquet"), "is not a Parquet trace"),
        (lambda p: pd.DataFrame({"a": [1]}).to_parquet(p), "is not a failbench trace: no column(s) step"),
    ],
)
def test_diagnose_refuses_bad_input_in_one_line_exit_2(tmp_path, capsys, write, message):
    path = tmp_path / "trace.parquet"
    if write:
        write(path)
    before = sorted(tmp_path.iterdir())
    assert main(["diagnose", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert sorted(tmp_path.iterdir()) == before  # nothing written


def test_diagnose_reads_a_fit_of_ones_own(tmp_path, capsys):
    """--fit: thresholds from `failbench calibrate --out`; here one no statistic can pass."""
    from failbench.detectors.own import FIT_FILE

    path = _dead_relu_trace(tmp_path / "dead.parquet")
    document = json.loads(FIT_FILE.read_text())
    for fitted in document["thresholds"].values():
        fitted["threshold"] = -1.0 if fitted["below"] else 2.0  # no ratio falls below, no share reaches
    own = tmp_path / "fit.json"
    own.write_text(json.dumps(document))
    assert main(["diagnose", str(path), "--fit", str(own)]) == 0
    assert "none of the suite's failures" in capsys.readouterr().out
    assert main(["diagnose", str(path), "--fit", str(tmp_path / "missing.json")]) == 2


def test_diagnose_refuses_an_unknown_mlflow_run(tmp_path, capsys):
    assert main(["--tracking-uri", f"sqlite:///{tmp_path / 'none.db'}", "diagnose", "mlflow:abc"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "none.db").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(healthy_runs.TRAININGS))
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_healthy_trainings_from_outside_the_suite_are_none(tmp_path, capsys, name, seed):
    """A small CNN with Adam, an MLP with SGD, a small residual net with batch norm: each learns
    (held-out accuracy > 0.6 on 10 classes) and each is none of the suite's failures."""
    frame, accuracy = healthy_runs.train(name, seed)
    assert accuracy > 0.6
    path = tmp_path / "trace.parquet"
    frame.to_parquet(path)
    assert main(["diagnose", str(path)]) == 0, capsys.readouterr().out
    assert "none of the suite's failures" in capsys.readouterr().out


def test_every_diagnosis_carries_the_statistics_table(tmp_path, capsys):
    """Found or not, each mechanism's statistic against its threshold, or why it was not judged."""
    path = _dead_relu_trace(tmp_path / "dead.parquet")
    assert main(["diagnose", str(path), "--json"]) == 1
    rows = {r["mechanism"]: r for r in json.loads(capsys.readouterr().out)["statistics"]}
    assert set(rows) == {"exploding/divergence", "dead_relu", "saturation", "constant_output", "slow_convergence"}
    dead = rows["dead_relu"]
    assert dead["past"] and dead["margin"] > 0 and dead["value"] >= dead["threshold"]
    assert dead["settled_at_step"] is not None
    assert rows["saturation"]["unjudged"] == "no hidden tanh, sigmoid or hard tanh layer traced"
    assert not rows["exploding/divergence"]["past"] and rows["exploding/divergence"]["unjudged"] is None
    assert main(["diagnose", str(path)]) == 1
    out = capsys.readouterr().out
    assert "statistics (margin:" in out and "  saturation: not judged: no hidden tanh" in out
    # a published tool that abstains says what it lacks (AUTOTRAINER: this loop logs no accuracy)
    assert "  AUTOTRAINER: abstains (no validation accuracy" in out


def test_none_names_the_nearest_mechanism_and_how_far_it_was(tmp_path, capsys):
    """A net that learns: no mechanism passes, and the nearest is the one farthest on its way from the
    suite's cured runs to its threshold (one scale for ratios and shares alike)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rec = failbench.watch(model, opt)
    x = torch.rand(64, 8)
    y = (x[:, 0] > x[:, 1]).long()
    for step in range(200):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 2 == 0:
            rec.log(step, loss=loss)
    path = rec.save(tmp_path / "learns.parquet")
    assert main(["diagnose", str(path), "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    short = [r for r in found["statistics"] if r["margin"] is not None]
    assert found["failures"] == [] and short and all(r["margin"] < 0 and not r["past"] for r in short)
    ways = [r for r in short if r["way_to_threshold"] is not None]
    assert ways and all(r["way_to_threshold"] < 1 for r in ways)
    assert found["nearest"] == max(ways, key=lambda r: r["way_to_threshold"])["mechanism"]
    assert main(["diagnose", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"none of the suite's failures; nearest: {found['nearest']} (" in out
    assert "of the way from the suite's cured runs to its threshold)" in out


def _loop(steps: int, dies_at: int | None, warn: bool = True):
    """An MLP on random data; from `dies_at` its first layer's bias is pushed far below zero (a ReLU
    layer dead on every input from then on, as a large step leaves it)."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    rec = failbench.watch(model, opt, warn=warn)
    x, y = torch.rand(64, 8), torch.randint(0, 2, (64,))
    for step in range(steps + 1):
        if step == dies_at:
            with torch.no_grad():
                model[0].bias.fill_(-1e3)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 10 == 0:
            rec.log(step, loss=loss)
    return rec


def test_watch_traces_a_users_loop_to_its_end():
    """A loop of 300 steps logged every 10: traced steps 1.25x apart, the last at the last log (the
    cases' 2x would stop at 160), so a failure the run ends in is on its last two traced steps."""
    rec = _loop(300, dies_at=None, warn=False)
    traced = sorted(rec.frame().query("layer != ''")["step"].unique())
    assert traced[-1] == 300 and traced[-2] >= 240 and len(traced) >= 10


def test_a_layer_that_dies_between_the_last_two_traced_steps_is_what_the_run_ends_in():
    """Traced at 240 and 300, dead from 250: a ReLU layer dead on every sample gets no gradient to
    revive it, so the last traced step suffices (own.py); a transient of another mechanism needs two."""
    from failbench.detectors import own
    from failbench.trace_reader import View

    found = own.diagnose(View(_loop(300, dies_at=250, warn=False).frame()))
    assert [(f.mechanism, f.step) for f in found][:1] == [("dead_relu", 300)]
    values = pd.Series([1.0, 0.0, 1.0], index=[100, 200, 300])
    assert own.settled(values, 0.5, below=False, persist=1) == 300
    assert own.settled(values, 0.5, below=False, persist=2) is None


def test_a_divergence_warned_at_its_nan_is_early_for_the_run_as_planned_not_as_recorded():
    from failbench.watching import warning_scores

    stopped = {"verdict": "diverged", "end_verdict": "exploding/divergence", "warned": "exploding/divergence"}
    rows = [{**stopped, "warned_at": 90, "last_step": 90, "planned_steps": 300}]
    scores = warning_scores(rows)
    assert (scores["warned before the last quarter"], scores["of the planned steps"]) == (0, 1)


def test_watch_warns_once_the_step_a_failure_settles_and_not_before():
    import warnings

    from failbench.watching import FailureWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rec = _loop(300, dies_at=120)
    said = [str(w.message) for w in caught if issubclass(w.category, FailureWarning)]
    dead = [m for m in said if m.startswith("failbench: dead_relu settled")]
    assert len(dead) == 1 and "the suite's case: relu_blowup, cured there by" in dead[0]
    assert 120 < rec.on_traced.warned["dead_relu"] <= 200  # on the second traced step past the death
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _loop(300, dies_at=None)
    assert not [w for w in caught if issubclass(w.category, FailureWarning)]


def test_the_warning_is_an_mlflow_tag_inside_an_active_run(tmp_path):
    import mlflow

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'warn.db'}")
    with pytest.warns(failbench.FailureWarning), mlflow.start_run() as run:
        _loop(300, dies_at=120)
    tags = mlflow.get_run(run.info.run_id).data.tags
    assert tags["failbench.warning.dead_relu"].startswith("failbench: dead_relu settled")


def test_replay_warns_where_the_live_warning_did():
    from failbench.watching import replay

    rec = _loop(300, dies_at=120)
    assert replay(rec.frame()) == rec.on_traced.warned


@pytest.mark.slow
def test_a_lightning_trainer_is_watched_by_one_callback(tmp_path):
    import warnings

    import pytorch_lightning as pl

    from failbench.lightning import Watch
    from failbench.watching import FailureWarning

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            if self.global_step == 120:
                with torch.no_grad():
                    self.net[0].bias.fill_(-1e3)
            x, y = batch
            return F.cross_entropy(self(x), y)

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    torch.manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.rand(64, 8), torch.randint(0, 2, (64,)))
    loader = torch.utils.data.DataLoader(data, batch_size=64)
    trainer = pl.Trainer(
        max_steps=301,
        callbacks=[Watch(warn=True, path=tmp_path / "trace.parquet")],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer.fit(Module(), loader)
    assert any(issubclass(w.category, FailureWarning) and "dead_relu" in str(w.message) for w in caught)
    assert main(["diagnose", str(tmp_path / "trace.parquet")]) == 1
