"""Every claim of every case, against its committed evidence (reports/reference: every seed range
and CPU capability run for it, pooled): a fresh run of the profile's seeds fails it with <= 1%
chance, the whole suite with <= 5%, and a planted regression (the fix's change reverted) fails it.

The plant needs no training: a variant with its fix's change reverted has the baseline's config at
the same axis point, so its runs are the baseline's runs bit for bit (asserted below, config hash
and all). A claim that the fix changes nothing ("does not cure") cannot be flipped by reverting it;
it is planted the other way, with the runs of a variant that cures at that point.
"""

from __future__ import annotations

import pytest

from failbench.analysis import evaluate
from failbench.contract import BASELINE, CURED
from failbench.discovery import discover
from failbench.evidence import (
    CLAIM_RISK,
    SUITE_RISK,
    claim_budget,
    evidence_text,
    pooled_runs,
    profile_claims,
    profile_evidence,
    suite_risk,
)
from failbench.identity import config_hash
from failbench.snapshot import REFERENCE_DIR, committed, read_document, stale_runs

CASES = discover()
PROFILES = sorted({p for c in CASES.values() for e in c.expectations for p in e.profiles})
QUICK = "quick"


# The full profile's claims rest on one range of 5-20 seeds (hours of CPU a range): their risks are
# printed by `failbench check --profile full` and stated in reports/README.md, not held here.
HELD = [p for p in PROFILES if p != "full"]


@pytest.fixture(scope="module")
def quick_evidence():
    return profile_evidence(list(CASES.values()), QUICK)


@pytest.mark.parametrize("profile", HELD)
def test_every_claim_stays_within_its_even_share_of_the_suite_s_risk(profile):
    """The sizing rule (harness/contract.py, Expectation.min_share): each claim's fresh-run risk
    within the suite's 5% split over the profile's claims, so the suite is within 5% by construction."""
    evidence = profile_evidence([c for c in CASES.values() if profile in c.profiles], profile)
    budget = claim_budget(profile_claims(profile))
    over = [(e.case, e.expectation.variant, dict(e.expectation.where), e.risk) for e in evidence if e.risk > budget]
    assert evidence and not over, f"budget {budget:.4%}: {over}"
    assert suite_risk(evidence) <= SUITE_RISK


def test_every_quick_claim_fails_a_fresh_run_with_at_most_one_percent_chance(quick_evidence):
    risky = [
        f"{e.case} {e.expectation.variant} {dict(e.expectation.where)} '{e.expectation.describe()}': "
        f"{evidence_text(e)}, a fresh run of {e.fresh_seeds} fails it with {e.risk:.2%}"
        for e in quick_evidence
        if e.risk > CLAIM_RISK
    ]
    assert not risky, "\n".join(risky)


def test_a_fresh_quick_make_all_fails_somewhere_with_at_most_five_percent_chance(quick_evidence):
    assert suite_risk(quick_evidence) <= SUITE_RISK


def test_every_quick_claim_stands_on_at_least_fifty_seeds_where_it_is_not_unanimous(quick_evidence):
    """>= 50 seeds pooled where a variant's rate is below 100% or its seeds flip between CPUs."""
    thin = [f"{e.case} {e.expectation.variant}: {evidence_text(e)}" for e in quick_evidence if e.k < e.n and e.n < 50]
    assert not thin, "\n".join(thin)


def _planted(case, expectation):
    """What a planted regression of `expectation` is, and whose runs it gives (variant, axis point):
    the variant with its fix reverted (the baseline at the same point), where the baseline is not
    claimed to show the same there; else a variant claimed otherwise at that point, a cure first;
    else the same variant with one axis moved to where it is claimed otherwise."""
    here = [
        e
        for e in case.expectations
        if QUICK in e.profiles and dict(e.where) == dict(expectation.where) and e is not expectation
    ]
    baseline_claim = next((e for e in here if e.variant == BASELINE), None)
    if expectation.variant != BASELINE and (
        baseline_claim is None or not set(baseline_claim.shows) & set(expectation.shows)
    ):
        return "its fix reverted", BASELINE, dict(expectation.where)
    otherwise = sorted(
        (e for e in here if not set(e.shows) & set(expectation.shows)), key=lambda e: e.shows != (CURED,)
    )
    if otherwise:
        return f"{otherwise[0].variant}'s change instead", otherwise[0].variant, dict(expectation.where)
    # Else one axis moved, on the same variant (identity_filter's small rate: the large one halts).
    for e in case.expectations:
        moved = {k for k in expectation.where if e.where.get(k) != expectation.where[k]}
        if e.variant == expectation.variant and QUICK in e.profiles and len(moved) == 1:
            if not set(e.shows) & set(expectation.shows):
                axis = moved.pop()
                return f"{axis}={e.where[axis]} instead", e.variant, dict(e.where)
    return None, None, None


def _plants():
    for case in CASES.values():
        for expectation in case.expectations:
            if QUICK in expectation.profiles:
                yield pytest.param(
                    case.name,
                    expectation,
                    id=f"{case.name}-{expectation.variant}"
                    + "".join(f"-{k}={v}" for k, v in expectation.where.items()),
                )


@pytest.mark.parametrize("name, expectation", list(_plants()))
def test_a_planted_regression_fails_the_claim_on_every_committed_range(name, expectation):
    case = CASES[name]
    planted, source, where = _planted(case, expectation)
    if planted is None:
        pytest.skip(f"no variant at {dict(expectation.where)} claims otherwise: nothing to plant")
    if planted == "its fix reverted":  # the reverted variant's runs are the baseline's, bit for bit
        axes = {**{k: v[0] for k, v in case.axes.items()}, **dict(expectation.where)}
        fix = case.fix(expectation.variant)
        # A variant's own budget stays (blurry_inpainting's adversarial cure at 800 steps, the
        # baseline's 250): the baseline keeps its symptom at 10x its budget (its README).
        own_budget = case.profiles[QUICK].variant_budget.get(expectation.variant, {})
        reverted = {k: getattr(case.baseline, k) for k in fix.change} | {
            k: getattr(case.config(BASELINE, axes, QUICK), k) for k in own_budget
        }
        assert config_hash(case.config(expectation.variant, axes, QUICK, reverted)) == config_hash(
            case.config(BASELINE, axes, QUICK)
        )
    pooled, _ = pooled_runs([case], QUICK)
    for label, runs in pooled.groupby("source"):
        at = runs["variant"] == source
        for axis, value in where.items():
            at &= runs[f"axis.{axis}"] == value
        # the planted runs stand where the claim looks: its variant, its axis point
        chosen = runs[at].assign(variant=expectation.variant, **{f"axis.{k}": v for k, v in expectation.where.items()})
        table = evaluate(case.__class__(**{**case.__dict__, "expectations": (expectation,)}), chosen, QUICK)
        assert len(table) == 1 and table["seeds"].iloc[0] > 0, (label, planted)
        assert not table["passed"].iloc[0], (
            f"{label}: {expectation.describe()} still holds with {planted} ({source}'s runs): "
            f"{table['observed'].iloc[0]}"
        )


def test_every_committed_snapshot_is_of_the_current_code_and_configs():
    """A snapshot of older code or another budget says nothing about today's cases: re-run and
    snapshot it, or `failbench restamp` it where its bits did not move (reports/README.md)."""
    stale = []
    for path in committed():
        document = read_document(path)
        for name, entry in document["cases"].items():
            runs = stale_runs(CASES[name], entry, document["profile"])
            unrecorded = sum(not r.get("config_hash") for r in entry["runs"])
            if any(runs) or unrecorded:
                stale.append(f"{path.relative_to(REFERENCE_DIR)} {name}: {sum(runs)} stale, {unrecorded} unrecorded")
    assert not stale, "\n".join(stale)
