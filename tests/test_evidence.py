"""A claim sized to its evidence (harness/evidence.py), a seed range judged alone (`check
--first-seed`), and the CPU capability in a run's identity and in `compare`'s expectations."""

from __future__ import annotations

import json

import pytest
import torch
from scipy import integrate, stats

from failbench import identity
from failbench.analysis import load_runs, seed_range
from failbench.cli import main
from failbench.compare import Side, compare, to_markdown
from failbench.evidence import fresh_failure_chance, pooled_runs, profile_evidence, suite_risk
from failbench.snapshot import read_snapshot, write_snapshot
from failbench.sweep import run_sweep

CPU = torch.device("cpu")


def _by_integration(k: float, n: float, min_share: float, fresh: int) -> float:
    """The same predictive, integrated by hand: the binomial's lower tail averaged over the
    Jeffreys posterior of the rate."""
    needed = -(-round(min_share * fresh * 1e6) // 10**6)  # ceil without float noise
    posterior = stats.beta(k + 0.5, n - k + 0.5)
    value, _ = integrate.quad(lambda p: stats.binom(fresh, p).cdf(needed - 1) * posterior.pdf(p), 0, 1, limit=200)
    return value


@pytest.mark.parametrize(
    "k, n, min_share, fresh", [(20, 20, 0.9, 10), (35, 50, 0.3, 10), (49.5, 50, 0.7, 10), (9, 10, 0.5, 20)]
)
def test_fresh_failure_chance_is_the_jeffreys_predictive(k, n, min_share, fresh):
    assert fresh_failure_chance(k, n, min_share, fresh) == pytest.approx(_by_integration(k, n, min_share, fresh), 1e-6)


def test_fresh_failure_chance_by_the_numbers():
    # 20/20 is not zero risk: a ">= 90% of 10" claim on it fails 4.3% of fresh runs.
    assert fresh_failure_chance(20, 20, 0.9, 10) == pytest.approx(0.0431, abs=5e-5)
    # More evidence, or a smaller claim, lowers it; a claim nobody measured is never safe.
    assert fresh_failure_chance(50, 50, 0.9, 10) < fresh_failure_chance(20, 20, 0.9, 10)
    assert fresh_failure_chance(50, 50, 0.7, 10) < fresh_failure_chance(50, 50, 0.9, 10)
    assert fresh_failure_chance(0, 0, 0.5, 10) == 1.0
    assert suite_risk([]) == 0.0


def _snapshot(path, toy_runs, capability: str, flip_seed: int | None = None):
    """A toy snapshot as `failbench snapshot` writes it, under a given CPU capability, with one
    seed of the `fast` variant turned into a symptom (the loss 1e3x its value)."""
    document = json.loads(toy_runs.read_text())
    document["environment"]["cpu_capability"] = capability
    for run in document["cases"]["toy"]["runs"]:
        if run["variant"] == "fast" and run["seed"] == flip_seed:
            run["values"] = [v * 1e3 for v in run["values"]]
    path.write_text(json.dumps(document))
    return path


def test_pooled_evidence_counts_a_seed_once_and_a_capability_split_as_half(tracker, toy, tmp_path):
    run_sweep(toy, "quick", tracker, CPU, progress=False)
    written = tmp_path / "written.json"
    write_snapshot(tracker, [toy], "quick", written)
    a = _snapshot(tmp_path / "a.json", written, "AVX512")
    b = _snapshot(tmp_path / "b.json", written, "AVX2", flip_seed=1)
    pooled, sources = pooled_runs([toy], "quick", [a, b])
    assert [s.label for s in sources] == ["0-1 AVX2", "0-1 AVX512"] and len(pooled) == 24
    evidence = {e.expectation.variant: e for e in profile_evidence([toy], "quick", [a, b])}
    # Two axis points x two seeds; seed 1, which the capabilities disagree on at both points,
    # counts half a match at each.
    assert (evidence["fast"].k, evidence["fast"].n) == (3.0, 4)
    assert (evidence["baseline"].k, evidence["baseline"].n) == (4, 4)
    assert evidence["fast"].fresh_seeds == 4  # the quick profile's 2 seeds at both axis points
    fast = evidence["fast"]
    assert fast.risk == fresh_failure_chance(3.0, 4, fast.expectation.min_share, 4) and fast.risk > 0.1
    assert evidence["baseline"].ranges == ("0-1 AVX2", "0-1 AVX512") and not evidence["baseline"].stale


def test_check_judges_the_range_it_is_given_and_prints_the_evidence(store_uri, toy, tracker, capsys, monkeypatch):
    from failbench import cli

    monkeypatch.setattr(cli, "selected", lambda args: [toy])
    run_sweep(toy, "quick", tracker, CPU, progress=False)  # seeds 0-1, every variant
    run_sweep(toy, "quick", tracker, CPU, progress=False, variants=["baseline"], first_seed=5)  # 5-6, one
    assert len(seed_range(load_runs(tracker, toy, "quick"), 5, 2)) == 4
    assert main(["check"]) == 0
    out = capsys.readouterr().out
    assert "toy (quick, seeds 0-1, 12 runs)" in out and "fresh fails" in out and "pooled evidence" in out
    # The held-out range by itself: two of its variants never ran there, so it fails, whatever 0-1 holds.
    assert main(["check", "--first-seed", "5"]) == 1
    out = capsys.readouterr().out
    assert "toy (quick, seeds 5-6, 4 runs)" in out and "no runs" in out and "check: FAILED" in out
    assert main(["check", "--first-seed", "7"]) == 1
    assert "seeds 7-8; run `failbench run toy --profile quick --first-seed 7` first" in capsys.readouterr().out


def test_the_cpu_capability_is_part_of_the_environment_and_recorded(monkeypatch, tracker, toy, tmp_path):
    env = identity.environment()
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    other = "AVX2" if env["cpu_capability"] != "AVX2" else "DEFAULT"
    assert identity.environment_hash({**env, "cpu_capability": other}) != identity.environment_hash(env)
    run_sweep(toy, "quick", tracker, CPU, progress=False, variants=["baseline"], seeds=1)
    runs = load_runs(tracker, toy, "quick")
    assert set(runs["cpu_capability"]) == {env["cpu_capability"]}
    path = tmp_path / "ref.json"
    write_snapshot(tracker, [toy], "quick", path)
    written = json.loads(path.read_text())["environment"]
    assert written["cpu_capability"] == env["cpu_capability"] and written["cpu_model"] == identity.cpu_model()


def test_compare_says_when_bits_must_agree_and_when_only_statistics(tracker, toy, tmp_path):
    run_sweep(toy, "quick", tracker, CPU, progress=False)
    path = tmp_path / "ref.json"
    write_snapshot(tracker, [toy], "quick", path)
    current = Side("current", load_runs(tracker, toy, "quick").assign(case="toy"))
    same = compare([toy], Side("snap", read_snapshot(path, [toy], "quick")), current)
    assert same.identical and "bit-identical results are expected" in to_markdown(same)
    other = _snapshot(
        tmp_path / "avx2.json", path, "AVX2" if "AVX2" not in set(current.runs["cpu_capability"]) else "DEFAULT"
    )
    apart = compare([toy], Side("snap", read_snapshot(other, [toy], "quick")), current)
    assert "Only statistical agreement is expected (CPU capability" in to_markdown(apart)


@pytest.mark.parametrize("k, n", [(0, 10), (3, 10), (9.5, 10), (10, 10)])
def test_the_pooled_interval_is_jeffreys_with_its_ends(k, n):
    from failbench.evidence import jeffreys_interval

    low, high = jeffreys_interval(k, n)
    posterior = stats.beta(k + 0.5, n - k + 0.5)
    assert low == (0.0 if k == 0 else pytest.approx(posterior.ppf(0.025)))
    assert high == (1.0 if k == n else pytest.approx(posterior.ppf(0.975)))


def test_the_largest_safe_claim_is_the_largest_tenth_within_the_budget():
    from failbench.evidence import claim_budget, largest_safe_share

    # 50/50: ">= 70% of 10" fails 0.012% of fresh runs, ">= 80%" 0.115%
    assert largest_safe_share(50, 50, 10, 0.001) == 0.7 and largest_safe_share(50, 50, 10, 0.002) == 0.8
    assert largest_safe_share(0, 50, 10, 0.001) == 0.0
    assert claim_budget(50) == pytest.approx(0.001) and claim_budget(1) == 0.01
