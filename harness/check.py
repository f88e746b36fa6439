"""`failbench check`: one seed range of stored runs judged against every case's expectations, each
printed beside its pooled evidence and the chance a fresh run fails it (harness/evidence.py).

The command is a thin door onto `check`; the report notebooks judge through the same
`analysis.evaluate`, so a report and a CI verdict cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from failbench.analysis import evaluate, load_runs, result_label, seed_range
from failbench.contract import Case
from failbench.evidence import (
    CLAIM_RISK,
    SUITE_RISK,
    claim_budget,
    evidence_text,
    largest_safe_share,
    profile_claims,
    profile_evidence,
    risk_text,
    suite_risk,
)
from failbench.formatting import share_text
from failbench.stats import THIN_SEEDS

COLUMNS = ["variant", "where", "expected", "observed", "seeds", "share (95% CI)", "result", "pooled", "fresh fails"]


@dataclass
class CheckResult:
    failed: bool = False
    lines: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def _seed_label(first_seed: int, seeds: int) -> str:
    return f"seeds {first_seed}-{first_seed + seeds - 1}"


def check(
    tracker, cases: list[Case], profile: str, first_seed: int = 0, seeds: int | None = None, explain: bool = False
) -> CheckResult:
    """Judges seeds first_seed..first_seed+n-1 (n: `seeds`, else each case's profile's) of every case
    that has expectations on `profile`; `explain` adds each claim's seed ranges and reason."""
    result = CheckResult()
    evidence = profile_evidence(cases, profile)
    thin_count = 0
    with pd.option_context("display.width", 250, "display.max_colwidth", 60, "display.max_rows", 500):
        for case in cases:
            items = [e for e in evidence if e.case == case.name]
            if not items:
                result.lines.append(f"{case.name}: no expectations on profile {profile}; nothing to judge")
                continue
            n = seeds or case.profiles[profile].seeds
            runs = seed_range(load_runs(tracker, case, profile), first_seed, n)
            if runs.empty:
                result.lines.append(
                    f"{case.name}: no finished runs of its current code on profile {profile}, "
                    f"{_seed_label(first_seed, n)}; run `failbench run {case.name} --profile {profile}"
                    + (f" --first-seed {first_seed}" if first_seed else "")
                    + "` first"
                )
                result.failed = True
                continue
            table = evaluate(case, runs, profile)
            table["share (95% CI)"] = table["share"].map(share_text)
            table["result"] = [result_label(ok, thin) for ok, thin in zip(table["passed"], table["thin"])]
            table["pooled"] = [f"{e.k:g}/{e.n}" for e in items]
            table["fresh fails"] = [risk_text(e.risk) for e in items]
            result.lines.append(f"\n{case.name} ({profile}, {_seed_label(first_seed, n)}, {len(runs)} runs)")
            result.lines.append(table[COLUMNS].to_string(index=False))
            if explain:
                budget = claim_budget(profile_claims(profile))
                result.lines += [
                    f"  {e.expectation.variant} {e.expectation.where_text()}: {evidence_text(e)}; "
                    f"the largest claim a fresh run fails with <= {budget:.2%} "
                    f"(the suite's {SUITE_RISK:.0%} split over its claims): "
                    f"{largest_safe_share(e.k, e.n, e.fresh_seeds, budget):.0%}. {e.expectation.why}"
                    for e in items
                ]
            result.failed |= not table["passed"].all()
            thin_count += int(table["thin"].sum())
    if thin_count:
        result.lines.append(
            f"\n{thin_count} expectation(s) judged on fewer than {THIN_SEEDS} seeds are marked (thin): "
            "their share says little (95% CI of 9/9 seeds: 70-100%)"
        )
    result.lines.append(suite_line(evidence, profile))
    result.lines.append("\ncheck: " + ("FAILED" if result.failed else "all expectations hold"))
    return result


def suite_line(evidence: list, profile: str) -> str:
    """What the pooled evidence says of a fresh run: the largest single risk and the whole suite's."""
    if not evidence:
        return ""
    worst = max(evidence, key=lambda e: e.risk)
    return (
        f"\npooled evidence (committed snapshots of {profile}, every seed range): a fresh run fails some "
        f"claim with {risk_text(suite_risk(evidence))} chance (goal <= {SUITE_RISK:.0%}); the riskiest is "
        f"{worst.case} {worst.expectation.variant}, {risk_text(worst.risk)} (goal <= {CLAIM_RISK:.0%} each); "
        "`check --explain` lists the ranges"
    )
