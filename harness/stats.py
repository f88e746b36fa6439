"""The statistics behind a verdict: a share of seeds with its 95% interval, and a two-sample test.

A verdict is a share of seeds, so it is a binomial proportion. Its interval is Wilson's score
interval (scipy's `binomtest(k, n).proportion_ci(method="wilson")`): at the 10-20 seeds a judged
point runs, Clopper-Pearson's exact interval is conservative (its coverage is above 95%, so it is
wider than it needs to be), and the Wald interval collapses to zero width at 0/n and n/n, which is
exactly where most verdicts sit. Wilson's coverage stays close to 95% at small n and is never empty
(Brown, Cai & DasGupta, "Interval Estimation for a Binomial Proportion", Statistical Science 2001).

Two sets of runs are compared per metric with a two-sided Mann-Whitney U test, as asv does
(`asv compare`): it assumes no distribution, and the metrics of training runs (a filter at -5e4 on
one seed and -1e3 on another, a PSNR that saturates) are far from normal.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

CONFIDENCE = 0.95
# Below this many seeds a share says little: 9/9 has a Wilson interval of [0.70, 1].
THIN_SEEDS = 10
# asv tests only with >= 6 samples a side. The two-sided exact test's smallest p-value is
# 2 / C(n1 + n2, n1): 0.0022 at 6 + 6 seeds, 1.1e-5 at 10 + 10; at 5 + 5 it is 0.0079, too close
# to any sane level to tell a change from noise, so below 6 a side the test is not run.
MIN_SEEDS_FOR_TEST = 6
# When `failbench compare` calls a metric changed. asv tests at p < 0.002, but 6 + 6 seeds (the
# fewest we test) reach no p below 2 / C(12, 6) = 0.0022 even when every seed moved: 0.005 is the
# nearest round level that a complete shift on 6 seeds a side passes. The minimum relative change
# of the medians is asv's --factor 1.1.
DEFAULT_ALPHA = 0.005
DEFAULT_MIN_CHANGE = 0.10


@dataclass(frozen=True)
class Share:
    """`k` of `n` seeds, with the Wilson interval [low, high] at CONFIDENCE."""

    k: int
    n: int
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.k / self.n if self.n else math.nan

    @property
    def thin(self) -> bool:
        return self.n < THIN_SEEDS


def share(k: int, n: int, confidence: float = CONFIDENCE) -> Share:
    """k successes in n seeds with Wilson's score interval; n = 0 gives an empty, NaN interval."""
    if not 0 <= k <= n:
        raise ValueError(f"a share needs 0 <= k <= n, got {k}/{n}")
    if n == 0:
        return Share(0, 0, math.nan, math.nan)
    from scipy.stats import binomtest  # deferred: scipy costs ~0.3 s to import

    ci = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
    return Share(k, n, float(ci.low), float(ci.high))


def clustered_share(hits: Sequence[bool], clusters: Sequence, confidence: float = CONFIDENCE) -> Share:
    """k of n runs that cluster (seeds of one grid point share everything but the seed), with
    Wilson's interval at Kish's effective size n / (1 + (m - 1) ICC): m the mean cluster size, the
    intraclass correlation from the one-way ANOVA estimator (Fleiss, Statistical Methods for Rates
    and Proportions, 3rd ed., ch. 15), clamped to [0, 1]. Where it cannot be estimated (every run
    alike, or one cluster) it is taken as 1: each grid point counts as one observation, the
    cautious reading, since its seeds may differ in nothing the score sees."""
    hits = [bool(h) for h in hits]
    n, k = len(hits), sum(hits)
    if n == 0:
        return Share(0, 0, math.nan, math.nan)
    groups: dict = {}
    for hit, cluster in zip(hits, clusters):
        groups.setdefault(cluster, []).append(hit)
    sizes = [len(g) for g in groups.values()]
    g, p = len(groups), k / n
    icc = 1.0
    if 1 < g < n:
        msb = sum(len(v) * (sum(v) / len(v) - p) ** 2 for v in groups.values()) / (g - 1)
        msw = sum(sum(v) - sum(v) ** 2 / len(v) for v in groups.values()) / (n - g)
        n0 = (n - sum(m * m for m in sizes) / n) / (g - 1)
        denominator = msb + (n0 - 1) * msw
        if denominator > 0:
            icc = min(1.0, max(0.0, (msb - msw) / denominator))
    elif g == n:
        icc = 0.0  # every run its own cluster: independent
    n_eff = n / (1 + (n / g - 1) * icc)
    from scipy.stats import norm

    z = float(norm.ppf(1 - (1 - confidence) / 2))
    centre = (p + z * z / (2 * n_eff)) / (1 + z * z / n_eff)
    half = z * math.sqrt(p * (1 - p) / n_eff + z * z / (4 * n_eff * n_eff)) / (1 + z * z / n_eff)
    return Share(k, n, max(0.0, centre - half), min(1.0, centre + half))


def mann_whitney_p(a: Sequence[float], b: Sequence[float]) -> float | None:
    """Two-sided Mann-Whitney U p-value, or None when either side has fewer than
    MIN_SEEDS_FOR_TEST finite values. Two identical samples give p = 1."""
    a = [float(x) for x in a if math.isfinite(x)]
    b = [float(x) for x in b if math.isfinite(x)]
    if min(len(a), len(b)) < MIN_SEEDS_FOR_TEST:
        return None
    if sorted(a) == sorted(b) or len(set(a) | set(b)) == 1:
        return 1.0  # scipy warns and returns NaN when every value ties
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)
