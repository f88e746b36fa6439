"""A claim's evidence: every seed range run for it, pooled, and the chance a fresh run fails it.

An expectation claims a share of seeds ("cured on >= 70%"). The seeds it was tuned on say little
about that share: blurry_inpainting's adversarial cure was cured on 9, 8, 6, 7 and 5 of 10 seeds on
five ranges, so a ">= 70%" claim set on the first range failed on other machines. A claim is sized
here to every committed snapshot of its profile (reports/reference: the reference seeds, the held-out
ranges, other CPU capabilities), pooled, and its risk is the chance that a fresh run of the profile's
seeds fails it when nothing changed.

That chance is a predictive, not a plug-in binomial: the variant's true rate is unknown, so it is
drawn from its posterior under Jeffreys' prior, Beta(k + 1/2, n - k + 1/2), and a fresh run of N
seeds matches the claim on a beta-binomial number of them. 20 matches in 20 seeds is not a zero
risk: a ">= 90% of 10" claim on it fails 4.3% of fresh runs (Gelman et al., Bayesian Data Analysis,
3rd ed., sec. 2.4 for the Jeffreys prior of a binomial; the beta-binomial is its predictive).

One seed at one axis point is one observation, whatever number of capabilities ran it: where AVX2
and AVX512 kernels give the same verdict (most variants: their training is not chaotic) it counts
once; where they disagree it counts half a match, so a chaotic variant's evidence says so instead of
being counted twice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from failbench.analysis import matches
from failbench.contract import Case, Expectation
from failbench.formatting import markdown_table
from failbench.grid import expand
from failbench.snapshot import SnapshotError, committed, read_snapshot

# A fresh run of the profile's seeds may fail a claim with at most this chance when nothing changed,
# and a fresh `make all` (every claim of the profile) with at most SUITE_RISK.
CLAIM_RISK = 0.01
SUITE_RISK = 0.05


@dataclass(frozen=True)
class Source:
    """One committed snapshot: its seed range and the CPU capability its kernels ran on."""

    path: Path
    seeds: tuple[int, int]
    capability: str

    @property
    def label(self) -> str:
        return f"{self.seeds[0]}-{self.seeds[1]} {self.capability}"


@dataclass(frozen=True)
class Evidence:
    """An expectation's pooled evidence and its risk on a fresh run of `fresh_seeds` runs."""

    case: str
    expectation: Expectation
    k: float  # matching seeds (a half where two capabilities disagree on one)
    n: int  # distinct seeds x axis points
    ranges: tuple[str, ...]
    stale: tuple[str, ...]  # ranges whose runs are of other code or another config: not counted
    fresh_seeds: int
    risk: float  # chance that a fresh run fails the claim, nothing changed

    @property
    def rate(self) -> float:
        return self.k / self.n if self.n else math.nan


def fresh_failure_chance(k: float, n: float, min_share: float, fresh: int) -> float:
    """P(a fresh run of `fresh` seeds matches on fewer than ceil(min_share * fresh)), the matching
    rate drawn from Beta(k + 1/2, n - k + 1/2): the posterior predictive under Jeffreys' prior.
    No evidence (n = 0) gives 1: a claim nobody measured is not safe."""
    if n <= 0 or fresh <= 0:
        return 1.0
    from scipy.stats import betabinom  # deferred: scipy costs ~0.3 s to import

    needed = math.ceil(min_share * fresh - 1e-9)
    return float(betabinom(fresh, k + 0.5, n - k + 0.5).cdf(needed - 1)) if needed > 0 else 0.0


def largest_safe_share(k: float, n: float, fresh: int, budget: float) -> float:
    """The largest claim, in tenths of the seeds, that a fresh run of `fresh` fails with at most
    `budget` chance on this evidence; 0 where even a tenth is not safe. Tenths, because a claim is
    read per 10 seeds ("on >= 7 of 10")."""
    safe = [t / 10 for t in range(1, 11) if fresh_failure_chance(k, n, t / 10, fresh) <= budget]
    return max(safe, default=0.0)


def claim_budget(claims: int) -> float:
    """Each claim's share of the suite's risk: SUITE_RISK split evenly over the profile's `claims`
    (every case's, Bonferroni), at most CLAIM_RISK. Claims sized within it fail a fresh run of the
    profile somewhere with at most SUITE_RISK chance, whatever their number."""
    return min(CLAIM_RISK, SUITE_RISK / max(1, claims))


def profile_claims(profile: str) -> int:
    """How many claims every case makes on `profile`: what `claim_budget` splits the risk over."""
    from failbench.discovery import discover

    return sum(profile in e.profiles for case in discover().values() for e in case.expectations)


def jeffreys_interval(k: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """The equal-tailed interval of the Jeffreys posterior, with Brown, Cai & DasGupta's ends (0 at
    k = 0, 1 at k = n): the interval that belongs to the predictive above, for a k that may be a half."""
    from scipy.stats import beta

    tail = (1 - confidence) / 2
    low = 0.0 if k <= 0 else float(beta.ppf(tail, k + 0.5, n - k + 0.5))
    high = 1.0 if k >= n else float(beta.ppf(1 - tail, k + 0.5, n - k + 0.5))
    return low, high


def pooled_text(item: Evidence) -> str:
    """`49.5/50 (99% [94%-100%])`: the pooled matches with their 95% Jeffreys interval."""
    if not item.n:
        return "-"
    low, high = jeffreys_interval(item.k, item.n)
    return f"{item.k:g}/{item.n} ({item.rate:.0%} [{low:.0%}-{high:.0%}])"


def pooled_runs(cases: list[Case], profile: str, paths: Iterable[Path] | None = None) -> tuple[pd.DataFrame, list]:
    """Every run of `cases` in the committed snapshots of `profile` (default: every one under
    reports/reference, whatever its folder), one row each with its source's label and whether it
    is current (harness/snapshot.py, `stale_runs`), and the sources read."""
    frames, sources = [], []
    for path in committed() if paths is None else paths:
        try:
            runs = read_snapshot(path, cases, profile)
        except SnapshotError:
            continue  # another profile's snapshot, or one of other cases
        capabilities = sorted(set(runs["cpu_capability"]))
        source = Source(path, (int(runs["seed"].min()), int(runs["seed"].max())), "/".join(capabilities))
        sources.append(source)
        frames.append(runs.assign(source=source.label))
    sources.sort(key=lambda s: (s.seeds, s.capability))
    order = {s.label: i for i, s in enumerate(sources)}
    frames.sort(key=lambda f: order[f["source"].iloc[0]])
    return (pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()), sources


def fresh_runs(case: Case, expectation: Expectation, profile: str) -> int:
    """How many runs a fresh run of the profile judges the expectation on: its seeds at every
    axis point its `where` selects."""
    return len(expand(case, profile, variants=[expectation.variant], where=expectation.where))


def evidence(case: Case, expectation: Expectation, profile: str, pooled: pd.DataFrame) -> Evidence:
    runs = pooled[pooled["case"] == case.name] if not pooled.empty else pooled
    hit = matches(expectation, runs)
    chosen = runs.loc[hit.index].assign(hit=hit.astype(float)) if len(hit) else runs.iloc[:0].assign(hit=[])
    # Runs of other code or another config are evidence about something else: named, not counted.
    stale = tuple(dict.fromkeys(chosen.loc[~chosen["current"].astype(bool), "source"])) if len(chosen) else ()
    chosen = chosen[chosen["current"].astype(bool)] if len(chosen) else chosen
    per_seed = chosen.groupby(["axes", "seed"])["hit"].mean() if len(chosen) else pd.Series(dtype=float)
    ranges = tuple(dict.fromkeys(chosen["source"])) if len(chosen) else ()
    fresh = fresh_runs(case, expectation, profile)
    k, n = float(per_seed.sum()), len(per_seed)
    return Evidence(
        case.name,
        expectation,
        k,
        n,
        ranges,
        stale,
        fresh,
        fresh_failure_chance(k, n, expectation.min_share, fresh),
    )


def profile_evidence(cases: list[Case], profile: str, paths: Iterable[Path] | None = None) -> list[Evidence]:
    """The evidence of every expectation of `cases` that applies to `profile`, in declared order."""
    pooled, _ = pooled_runs(cases, profile, paths)
    return [evidence(c, e, profile, pooled) for c in cases for e in c.expectations if profile in e.profiles]


def suite_risk(items: Iterable[Evidence]) -> float:
    """The chance that a fresh run fails at least one claim: 1 - prod(1 - risk), the claims taken
    as independent (they are: different variants, different runs)."""
    return 1.0 - math.prod(1.0 - e.risk for e in items)


def evidence_text(item: Evidence) -> str:
    """`47.5/50 (95% [86%-99%]) from 0-9 AVX512, 0-9 AVX2, 100-109 AVX512`: a half where the
    capabilities split a seed."""
    where = ", ".join(item.ranges) or "no snapshot"
    stale = f"; not counted, other code or config: {', '.join(item.stale)}" if item.stale else ""
    return f"{pooled_text(item)} from {where}{stale}"


def risk_text(risk: float) -> str:
    """A chance as a user reads it: `0.43%`, `<0.01%`, `100%`."""
    if risk >= 0.995:
        return "100%"
    if risk < 1e-4:
        return "<0.01%"
    return f"{risk:.2%}" if risk < 0.1 else f"{risk:.0%}"


def claims_markdown(items: Iterable[Evidence]) -> str:
    """The claims as a GitHub table: each with its pooled evidence, the seed ranges (and CPU
    capabilities) it comes from, and the chance a fresh run of the profile fails it."""
    rows = [
        {
            "variant": e.expectation.variant,
            "where": e.expectation.where_text(),
            "claim": e.expectation.describe(),
            "pooled (95% CI)": pooled_text(e),
            "ranges": ", ".join(e.ranges)
            + (f" (not counted, other code or config: {', '.join(e.stale)})" if e.stale else ""),
            "a fresh run fails it": f"{risk_text(e.risk)} ({e.fresh_seeds} seeds)",
        }
        for e in items
    ]
    return markdown_table(rows, list(rows[0]) if rows else ["claim"], cell=lambda _c, value: str(value))
