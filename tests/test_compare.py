"""Statistics against scipy and by hand; compare and snapshot on the toy case and through the CLI."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
from scipy.stats import binomtest, mannwhitneyu

from failbench import sweep as sweep_module
from failbench.analysis import load_runs
from failbench.cli import main
from failbench.compare import Side, classify, compare, load_side, relative_change, to_markdown
from failbench.snapshot import read_snapshot, write_snapshot
from failbench.stats import MIN_SEEDS_FOR_TEST, mann_whitney_p, share
from failbench.sweep import run_sweep

CPU = torch.device("cpu")


@pytest.mark.parametrize("k, n", [(0, 10), (3, 10), (9, 10), (10, 10), (1, 3), (17, 20)])
def test_share_interval_is_scipys_wilson(k, n):
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    s = share(k, n)
    assert (s.low, s.high) == pytest.approx((ci.low, ci.high), abs=1e-12)
    assert s.value == k / n and s.thin == (n < 10)


def test_share_interval_by_hand():
    # Wilson: (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n), z = 1.959964, 9 of 10
    z, n, p = 1.959963984540054, 10, 0.9
    centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    assert share(9, n).low == pytest.approx((centre - half) / (1 + z * z / n), abs=1e-12)
    assert share(9, n).high == pytest.approx((centre + half) / (1 + z * z / n), abs=1e-12)
    assert math.isnan(share(0, 0).low)
    with pytest.raises(ValueError):
        share(4, 3)


def test_mann_whitney_is_scipys_and_needs_six_seeds_a_side():
    a, b = [0.1, 0.5, 0.3, 0.9, 0.7, 0.2, 0.4], [1.1, 0.8, 1.3, 0.95, 1.2, 0.6]
    assert mann_whitney_p(a, b) == pytest.approx(mannwhitneyu(a, b, alternative="two-sided").pvalue)
    assert mann_whitney_p(a[: MIN_SEEDS_FOR_TEST - 1], b) is None
    assert mann_whitney_p(a, list(a)) == 1.0
    assert mann_whitney_p([1.0] * 6, [1.0] * 6) == 1.0  # all ties: scipy would give NaN


def _side(label: str, values: dict[str, list[float]], verdicts: list[str] | None = None) -> Side:
    n = len(next(iter(values.values())))
    rows = [
        {
            "case": "toy",
            "variant": "baseline",
            "axes": "{}",
            "seed": s,
            "verdict": (verdicts or ["symptom"] * n)[s],
            **{m: v[s] for m, v in values.items()},
        }
        for s in range(n)
    ]
    return Side(label, pd.DataFrame(rows))


def test_compare_tells_identical_from_shifted_from_float_noise(toy):
    base = [6.0 + 0.1 * s for s in range(10)]
    same = compare([toy], _side("a", {"loss": base}), _side("b", {"loss": list(base)}))
    assert same.identical and not same.failed and "**Identical**" in to_markdown(same)
    shifted = compare([toy], _side("a", {"loss": base}), _side("b", {"loss": [2 * v for v in base]}))
    row = shifted.metrics.iloc[0]
    assert (
        row["status"] == "changed"
        and row["p"] == pytest.approx(mannwhitneyu(base, [2 * v for v in base]).pvalue)
        and shifted.failed
    )
    # Every seed moved the same way, so p is tiny, but by one part in 1e9: never a failed build.
    noise = compare([toy], _side("a", {"loss": base}), _side("b", {"loss": [v * (1 + 1e-9) for v in base]}))
    assert noise.metrics.iloc[0]["status"] == "within thresholds" and not noise.failed
    few = compare([toy], _side("a", {"loss": base[:3]}), _side("b", {"loss": [2 * v for v in base[:3]]}))
    assert few.metrics.iloc[0]["status"] == "too few seeds" and not few.failed


def test_a_flipped_verdict_fails_and_a_moved_share_is_listed(toy):
    values = {"loss": [6.0] * 10}
    moved = compare([toy], _side("a", values, ["symptom"] * 10), _side("b", values, ["symptom"] * 8 + ["cured"] * 2))
    assert len(moved.verdicts) == 1 and not moved.failed
    flipped = compare([toy], _side("a", values, ["symptom"] * 10), _side("b", values, ["cured"] * 7 + ["symptom"] * 3))
    assert flipped.failed and "cured 7/10" in to_markdown(flipped)


def test_relative_change():
    assert relative_change(2.0, 1.0) == 0.5 and relative_change(0.0, 0.0) == 0.0
    assert relative_change(-1.0, 1.0) == 2.0


@pytest.mark.parametrize(
    "text, kind",
    [
        ("commit:abc1234", "commit"),
        ("abc1234", "commit"),
        ("torch:2.13.0", "torch"),
        ("2.13.0+cpu", "torch"),
        ("0123456789abcdef0123456789abcdef", "sweep"),
        ("current", "current"),
        ("reports/reference/quick.json", "snapshot"),
    ],
)
def test_selectors_are_read_as_documented(text, kind):
    assert classify(text)[0] == kind


def test_a_commit_that_only_changes_a_comment_compares_identical(tracker, toy, monkeypatch):
    monkeypatch.setattr(sweep_module, "git_commit", lambda: "a" * 40)
    run_sweep(toy, "quick", tracker, CPU, progress=False)
    monkeypatch.setattr(sweep_module, "git_commit", lambda: "b" * 40)
    assert run_sweep(toy, "quick", tracker, CPU, progress=False).ran == 0  # same code: all reused
    base, head = (load_side(f"commit:{c * 7}", [toy], "quick", tracker) for c in "ab")
    assert len(base.runs) == len(head.runs) == 12
    assert compare([toy], base, head).identical


def test_snapshot_round_trips_bit_for_bit(tracker, toy, tmp_path):
    run_sweep(toy, "quick", tracker, CPU, progress=False)
    path = tmp_path / "ref.json"
    assert write_snapshot(tracker, [toy], "quick", path) == {"toy": 12}
    document = json.loads(path.read_text())
    assert document["cases"]["toy"]["metrics"] == ["loss"] and document["profile"] == "quick"
    stored = load_runs(tracker, toy, "quick")
    back = read_snapshot(path, [toy], "quick")
    merged = back.merge(stored, on=["variant", "axes", "seed"], suffixes=("_snap", "_store"))
    assert len(merged) == 12 and (merged["loss_snap"].isna() == merged["loss_store"].isna()).all()
    finite = merged.dropna(subset=["loss_snap"])
    assert (finite["loss_snap"] == finite["loss_store"]).all()  # the same doubles
    assert (merged["verdict_snap"] == merged["verdict_store"]).all()
    assert compare(
        [toy], Side("snap", back.assign(case="toy")), load_side("current", [toy], "quick", tracker)
    ).identical


def test_compare_from_the_command_line(store_uri, tmp_path, capsys):
    # The case's own settings against a 10x lower learning rate: the filter ends 10x less negative.
    args = ["relu_blowup", "--variant", "baseline", "--seeds", "6", "--quiet"]
    assert main(["run", *args]) == 0
    base = capsys.readouterr().out.split("sweep ")[-1].strip()
    assert main(["run", *args, "--set", "lr=3e-5"]) == 0
    head = capsys.readouterr().out.split("sweep ")[-1].strip()
    assert main(["compare", base, f"sweep:{head}", "relu_blowup", "--out", str(tmp_path / "c.md")]) == 1
    out = capsys.readouterr().out
    assert "Significant changes" in out and "| relu_blowup | baseline | - | filter_min | 6/6 |" in out
    assert (tmp_path / "c.md").read_text() == out
    assert main(["compare", base, base, "relu_blowup"]) == 0
    assert "**Identical**" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["compare", "nothere.json", "other.json"], "no snapshot at nothere.json"),
        (["compare", "current", "commit:abcdef1"], "no MLflow store at"),
        (["compare", "x y", "current"], "cannot read selector 'x y'"),
        (["compare", "current", "current", "--alpha", "2"], "--alpha must be between 0 and 1"),
        (["snapshot", "relu_blowup"], "no MLflow store at"),
        (["snapshot", "relu_blowup", "--seeds", "3"], "--seeds needs --first-seed (which range to keep)"),
    ],
)
def test_compare_and_snapshot_refuse_bad_input_and_write_nothing(argv, message, store_uri, tmp_path, capsys):
    (tmp_path / "mlflow.db").unlink()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("failbench: error: ") and message in err and len(err.splitlines()) == 1
    assert list(tmp_path.iterdir()) == []
