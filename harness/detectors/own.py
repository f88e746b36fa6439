"""failbench's own detector: one rule per failure mechanism, each a threshold fitted on the suite's traces.

A rule reads one statistic of the trace that states its mechanism, never a case's architecture
(layer names, counts or sizes), and fires at the first traced step from which the statistic stays
past its threshold to the end of the run: a failure is what the run ends in, not a transient.

| mechanism | statistic (per run) | fires when |
| --- | --- | --- |
| dead_relu | largest share, over hidden ReLU-family layers, of units active on < 1% of samples | >= t |
| saturation | share of paths via hidden saturating layers crossing a flat unit, not learned through (below) | >= t |
| constant_output | the output's spread across the batch / its spread at the first traced step | <= t |
| slow_convergence | median over weighted layers of |update| / |weight|, on a plateau (below) | <= t |
| exploding | the run ends in a value that is not finite (below) | a non-finite value (no threshold) |

A path from input to output crosses one unit of each hidden layer, and passes gradient only if every
unit on it does: with a share f_l of a layer's samples on its flat region (slope < 1% of peak), the
share of closed paths is 1 - prod_l (1 - f_l) (identity_filter's `open_paths`, read from the trace).
Three layers each 60% flat close 94% of the paths; one layer 50% flat closes half, and the net
learns through the other half.

A halt is saturation the net does not learn through: the closed paths count while the loss is above
half its first value (unfinished, the plateau's line below), or while the output is all but the same
for every input (the plateau's spread below): a net can fit its output's prior with the output layer
alone while its hidden layers stay flat (positive_init: the loss to 0.10-0.20 of its first with
96-100% of the paths closed and one output for every digit). A net that learns through its flat
units has neither: the most closed of the suite's cured runs end at 0.67 (constant_output's
`sane_decay+adam`, a half-flat layer Adam learns through) and 0.75-0.83 (sigmoid_stack's
`unit_init`, four confident sigmoid layers), at 0.002-0.14 of their first loss with outputs that
follow the input (seeds 0-9). A trace without a loss is read on its paths alone.

A plateau is where a net has not yet started: its loss above half its first value and its output
all but the same for every input (spread across the batch under 1% of its mean magnitude), the
plateau at the start of training of Saxe et al. (ICLR 2014); or, whatever its outputs, its loss
still within 10% of its first (a rate too small to move it). Tiny steps elsewhere are a run at its
minimum (a residual net that starts at the identity).

A divergence is what the run ends in: its loss stopped being finite, or the last traced step holds
a non-finite value. One inf gradient that a mixed-precision scaler skipped, with finite steps after
it, is not a divergence.

Every rule fires at the first traced step from which its statistic stays past t to the end: at
least the last two traced steps, as a transient is no end. A dead layer needs the last one only: a
ReLU layer dead on every sample passes no gradient from the data to the weights that feed it, so it
stays dead (of the 205 runs of the quick grid's seeds 0-9 and 400-409 with a layer wholly dead at
some traced step, 200 stayed so to the end: 2 leaky ReLU layers came back, 3 ReLU layers for one
traced step before dying again), and a layer that dies late in a run, between its last two traced
steps, is what the run ends in. Thresholds are fitted by `fit`: per mechanism, the threshold that
detects the most sick runs whose failure it is (`Case.diagnosis_class`) while alarming on at most
1% of the runs it must not name: the cured runs of every case, and its own case's runs with the
symptom but not the mechanism (identity_filter's Dirac runs at the large constant overshoot with
their units open: a halt is not their failure). Halfway (in log10 for the ratios, in log-odds for
the shares) between the two observed values it falls between; at equal detection, the one farthest
from the runs it must not name; then held within what the mechanism means (`BOUNDS`). The fit reads
seeds 0-9 of the quick profile; `failbench detect`
and the README score it on seeds it never saw.

A run can match several mechanisms; it is reported in the order of the table (a dead or saturated
layer explains a flat output and a slow start; a collapse explains slow progress), as a tool
reports its first finding. The confidence of a finding is the share, among the fitted runs whose
statistic was at least as far past the threshold and that no earlier mechanism reports, of sick
runs of that mechanism's case.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from failbench.contract import CONSTANT_OUTPUT, DEAD_RELU, EXPLODING, SATURATION, SLOW_CONVERGENCE
from failbench.detectors.base import QUIET, Finding, Rule, Tool, fire
from failbench.formatting import median_text
from failbench.trace_reader import View

FIT_FILE = Path(__file__).resolve().parent / "own_fit.json"


@dataclass(frozen=True)
class Mechanism:
    name: str  # the failure class it names (contract)
    statistic: str
    below: bool  # True: the failure is a low value
    scale: str  # where "halfway" is taken: "log" (a ratio spanning decades), "logit" (a share)
    why: str
    persist: int = 2  # traced steps at the end that must all be past the threshold (module docstring)


MECHANISMS = (
    # a layer dead on every sample gets no gradient from the data: its last traced step is its end (1)
    Mechanism(DEAD_RELU, "dead_units", False, "logit", "units of a ReLU layer active on < 1% of samples", persist=1),
    Mechanism(
        SATURATION,
        "closed_paths",
        False,
        "logit",
        "paths through saturating layers that cross a flat unit, while the net does not learn through them",
    ),
    Mechanism(CONSTANT_OUTPUT, "spread_ratio", True, "log", "the output's spread across inputs / its first"),
    Mechanism(SLOW_CONVERGENCE, "update_ratio", True, "log", "median layer |update| / |weight| on a plateau"),
)
# Slow convergence is small steps *before* the minimum, a halt is saturation *before* it: a run whose
# loss has fallen below half its first value is on its way (or there), whatever its step size or its
# flat units. A definition, not a fitted value.
UNFINISHED = 0.5
# ...and before the net has started: an output whose spread across the batch is under 1% of its mean
# magnitude carries its input in the second significant digit (the constant_output case's symptom
# draws its line at the same 1%, of the targets' spread). 0.1 gives the same detections and alarms
# on the quick store's seeds 0-9: a definition, not a fitted value.
PLATEAU_SPREAD = 0.01
# ...or, whatever its outputs, before the loss has moved: within 10% of its first value (a rate of
# 1e-5 keeps an MLP's loss at 0.998 of its first for 300 steps while its outputs still differ by
# digit; a net at its minimum has a loss far below its first). A definition, not a fitted value.
FLAT_LOSS = 0.9
MAX_FALSE_ALARMS = 0.01  # of the fitted runs a mechanism must not name: a false alarm costs its user a wrong fix
FLOOR = 1e-7  # a ratio or share within float32's resolution (~1.2e-7) of 0 (or of 1) is read as 0 (1)


def _hidden(view: View, *activations: str) -> list[str]:
    """Layers with these activations, less the network's last (its output: a sigmoid output that
    saturates on 0/1 targets is a confident prediction, not a halted hidden layer)."""
    last = view.layers[-1] if view.layers else None
    return [n for n in view.with_activation(*activations) if n != last]


def series(view: View) -> dict[str, pd.Series]:
    """Per mechanism, its statistic at each traced step (NaN where the trace lacks it)."""

    def reduce(stat: str, layers: list[str], how) -> pd.Series:
        table = view.stat(stat, layers)
        return how(table) if table.shape[1] else pd.Series(dtype=float)

    spread = view.scalar("out_spread")
    first = spread.iloc[0] if len(spread) else math.nan
    loss = view.scalar("loss")
    updates = reduce("upd_ratio", view.weighted(), lambda t: t.median(axis=1))
    closed = reduce("sat_flat", _hidden(view, "tanh", "sigmoid", "hardtanh"), _closed_paths)
    if len(loss) and loss.iloc[0] > 0:
        progress = loss / loss.iloc[0]
        # slow, not started: small steps on a plateau (module docstring)
        at = _at(progress, updates.index)
        flat = at >= FLAT_LOSS
        constant = (at >= UNFINISHED) & (_relative_spread(view, spread, updates.index) < PLATEAU_SPREAD)
        updates = updates.where(flat | constant, math.inf)
        # a halt is saturation the net does not learn through: closed paths count while the loss has
        # not halved, or while the output carries nothing of the input (module docstring)
        halted = (_at(progress, closed.index) >= UNFINISHED) | (
            _relative_spread(view, spread, closed.index) < PLATEAU_SPREAD
        )
        closed = closed.where(closed.isna() | halted, 0.0)
    else:
        updates = updates.where(updates.isna(), math.inf)  # no loss, no plateau to read
    return {
        "dead_units": reduce("unit_active_lt1", _hidden(view, "relu", "leaky"), lambda t: t.max(axis=1)),
        "closed_paths": closed,
        "spread_ratio": spread / first if len(spread) and first > 0 else pd.Series(dtype=float),
        "update_ratio": updates,
    }


def _at(values: pd.Series, steps: pd.Index) -> pd.Series:
    """`values` at `steps`, each step reading the last value logged at or before it."""
    return values.reindex(values.index.union(steps)).ffill().reindex(steps)


def _closed_paths(flat: pd.DataFrame) -> pd.Series:
    """Per step, 1 - prod over layers of (1 - flat share): the paths that cross a flat unit (module
    docstring); NaN where no layer has the statistic."""
    return (1 - (1 - flat).prod(axis=1)).where(flat.notna().any(axis=1))


def _relative_spread(view: View, spread: pd.Series, steps: pd.Index) -> pd.Series:
    """The output's spread across the batch over its mean magnitude (the last layer's), at `steps`;
    an output of all zeros is as constant as any (0), an unknown one NaN (no plateau read)."""
    if not view.layers:
        return pd.Series(math.nan, index=steps)
    magnitude = view.stat("out_abs_mean", [view.layers[-1]])
    if not magnitude.shape[1]:
        return pd.Series(math.nan, index=steps)
    magnitude = magnitude.iloc[:, 0].reindex(steps)
    spread = spread.reindex(steps)
    ratio = spread / magnitude
    return ratio.mask((magnitude == 0) & (spread == 0), 0.0)


def _past(values: pd.Series, threshold: float, below: bool) -> pd.Series:
    return values <= threshold if below else values >= threshold


def settled(values: pd.Series, threshold: float, below: bool, persist: int) -> int | None:
    """The first step from which the values stay past the threshold to the end (>= `persist` steps)."""
    values = values.dropna()
    if not len(values):
        return None
    hits = _past(values, threshold, below).to_numpy()
    if not hits[-min(persist, len(hits)) :].all():
        return None
    start = len(hits)
    while start > 0 and hits[start - 1]:
        start -= 1
    return int(values.index[start])


def features(view: View, values: dict[str, pd.Series] | None = None) -> dict[str, float]:
    """Per mechanism, the value that must pass its threshold: the least extreme of its last `persist`
    traced values (the run ends past the threshold only if this one is)."""
    values = series(view) if values is None else values
    out = {}
    for mechanism in MECHANISMS:
        tail = values[mechanism.statistic].dropna().iloc[-mechanism.persist :]
        out[mechanism.statistic] = float(tail.max() if mechanism.below else tail.min()) if len(tail) else math.nan
    return out


# -- fitting ------------------------------------------------------------------------------------
def fit(runs: pd.DataFrame) -> dict:
    """`runs`: one row per run with its `case`, `failure_class`, `verdict` (sick: 'symptom' or
    'diverged'; 'cured'; others are left out) and a column per mechanism statistic (`features`).
    Returns {statistic: {threshold, ...}} with the fitted runs' values kept for the confidence."""
    fitted = {}
    sick = runs["verdict"].isin(("symptom", "diverged"))
    cured = runs["verdict"] == "cured"
    expected = _expected(runs)
    # a run reported as an earlier mechanism (or as exploding) never reaches this one's report: it
    # is left out of the confidence's reference, as it is of what the detector would say
    explained = runs["nonfinite"].astype(bool) if "nonfinite" in runs else pd.Series(False, index=runs.index)
    for mechanism in MECHANISMS:
        values = runs[mechanism.statistic].astype(float)
        target = expected == mechanism.name
        # its own case's symptom for another reason: a run this mechanism must not name either
        other_cause = sick & expected.isna() & (runs["failure_class"] == mechanism.name)
        pos, neg = values[target].dropna().to_numpy(), values[cured | other_cause].dropna().to_numpy()
        threshold = _stump(pos, neg, mechanism.below, mechanism.scale) if len(pos) and len(neg) else math.nan
        threshold = _within_bound(threshold, mechanism)
        known = values.notna() & (sick | cured) & ~explained
        if math.isfinite(threshold):
            explained = explained | ((values <= threshold) if mechanism.below else (values >= threshold))
        fitted[mechanism.statistic] = {
            "mechanism": mechanism.name,
            "threshold": threshold,
            "below": mechanism.below,
            "sick_median": _median(pos),
            "cured_median": _median(values[cured].dropna().to_numpy()),
            "sick_runs": int(len(pos)),
            "cured_runs": int(values[cured].notna().sum()),
            # (value, is this mechanism's sick run) of every fitted run that has the statistic and is
            # not reported as an earlier mechanism
            "reference": sorted(zip(values[known].round(6).tolist(), target[known].astype(int).tolist())),
        }
    return fitted


# What a mechanism means, whatever the fit: a threshold the fitted runs would put past its bound is
# moved to it (a fit on few cases, or on cured runs all at 0, can land anywhere between them).
BOUNDS = {
    "dead_units": 0.5,  # at least half a layer's units dead
    "closed_paths": 0.5,  # at least half the paths closed: through the other half a net learns
    "spread_ratio": 0.1,  # a collapse: the output's spread fell at least tenfold
    "update_ratio": 1e-3,  # a weight takes >= 1,000 steps to move by its own size
}


def _within_bound(threshold: float, mechanism: Mechanism) -> float:
    bound = BOUNDS[mechanism.statistic]
    if not math.isfinite(threshold):
        return threshold
    return min(threshold, bound) if mechanism.below else max(threshold, bound)


def _expected(runs: pd.DataFrame) -> pd.Series:
    """Per run, the class a right diagnosis names (`collect`'s column; where absent, the case's
    class for a sick run), None for the others."""
    if "expected" in runs:
        return runs["expected"]
    sick = runs["verdict"].isin(("symptom", "diverged"))
    return runs["failure_class"].where(sick, None)


def _median(x: np.ndarray) -> float:
    finite = x[np.isfinite(x)]
    return float(np.median(finite)) if len(finite) else math.nan


def _stump(pos: np.ndarray, neg: np.ndarray, below: bool, scale: str) -> float:
    """The threshold that detects the most of the sick runs while alarming on at most
    MAX_FALSE_ALARMS of the others (`neg`); at equal detection, the one farthest from the others.
    Candidates lie halfway between neighbouring observed values, on the statistic's scale: log10
    for a ratio, log-odds for a share (a share of 0.999 is as far from 0.99 as 0.99 from 0.9: a
    layer whose every unit is dead is another thing from one that lost most of them)."""
    forward, back = SCALES[scale]
    p, n = forward(pos[np.isfinite(pos)]), forward(neg[np.isfinite(neg)])
    if below:  # a low value is the failure: flip, so the failure is always >= threshold
        p, n = -p, -n
    values = np.unique(np.concatenate([p, n]))
    candidates = (values[:-1] + values[1:]) / 2 if len(values) > 1 else values
    best, best_tpr = math.nan, -1.0
    for t in candidates:  # ascending: a later t of equal detection is farther from the cured runs
        tpr, fpr = (p >= t).mean(), (n >= t).mean() if len(n) else 0.0
        if fpr <= MAX_FALSE_ALARMS and tpr >= best_tpr:
            best, best_tpr = t, tpr
    if math.isnan(best):
        return math.nan
    return float(back(-best if below else best))


def _logit(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, FLOOR, 1 - FLOOR)
    return np.log(x / (1 - x))


SCALES = {
    "log": (lambda x: np.log10(np.maximum(x, FLOOR)), lambda t: 10**t),
    "logit": (_logit, lambda t: 1 / (1 + math.exp(-t))),
}


def load_fit(path: Path = FIT_FILE) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{path.name} is missing: run `failbench calibrate` on a store of the quick grid")
    return json.loads(path.read_text())


# -- judging ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Diagnosis:
    mechanism: str
    step: int
    value: float
    threshold: float
    confidence: float
    sick_median: float
    cured_median: float
    why: str


def diagnose(view: View, fitted: dict | None = None) -> list[Diagnosis]:
    """Every mechanism the run ends in, in the reporting order (module docstring)."""
    fitted = fitted or load_fit()["thresholds"]
    found = []
    nonfinite = view.ends_nonfinite_at()
    if nonfinite is not None:
        found.append(Diagnosis(EXPLODING, nonfinite, math.nan, math.nan, 1.0, math.nan, math.nan, "a non-finite value"))
    values = series(view)
    finals = features(view, values)
    for mechanism in MECHANISMS:
        fit_ = fitted.get(mechanism.statistic)
        if not fit_ or not math.isfinite(fit_["threshold"]):
            continue
        step = settled(values[mechanism.statistic], fit_["threshold"], mechanism.below, mechanism.persist)
        if step is None:
            continue
        value = finals[mechanism.statistic]
        found.append(
            Diagnosis(
                mechanism.name,
                step,
                value,
                fit_["threshold"],
                _confidence(fit_["reference"], value, fit_["threshold"], mechanism.below),
                fit_["sick_median"],
                fit_["cured_median"],
                mechanism.why,
            )
        )
    return found


def statistics(view: View, fitted: dict | None = None) -> list[dict]:
    """Per mechanism, what `diagnose` read on this run, whether or not it fires: the statistic's final
    value (`features`), its threshold, how far past or short of it (`margin`, in the scale the
    threshold was fitted in: decades for a ratio, log-odds for a share; positive = past), the step it
    settled from where it did, and for a mechanism it could not judge, why (`unjudged`)."""
    fitted = fitted or load_fit()["thresholds"]
    nonfinite = view.ends_nonfinite_at()
    rows = [
        {
            "mechanism": EXPLODING,
            "statistic": "the run ends in a value that is not finite (no threshold)",
            "value": None,
            "threshold": None,
            "margin": None,
            "past": nonfinite is not None,
            "settled_at_step": nonfinite,
            "unjudged": None if len(view.scalar("loss")) else "no loss logged",
            "note": None if nonfinite is not None else _finite_note(view),
        }
    ]
    values = series(view)
    finals = features(view, values)
    for mechanism in MECHANISMS:
        threshold = fitted.get(mechanism.statistic, {}).get("threshold", math.nan)
        value = finals[mechanism.statistic]
        why_not = _unjudged(view, mechanism, value) or (None if math.isfinite(threshold) else "no fitted threshold")
        step = None if why_not else settled(values[mechanism.statistic], threshold, mechanism.below, mechanism.persist)
        margin = math.nan if why_not else _margin(value, threshold, mechanism)
        cured = fitted.get(mechanism.statistic, {}).get("cured_median", math.nan)
        way = math.nan if why_not or cured is None else _way(value, cured, threshold, mechanism)
        rows.append(
            {
                "mechanism": mechanism.name,
                "statistic": mechanism.why,
                "value": value if math.isfinite(value) and not why_not else None,
                "threshold": threshold if math.isfinite(threshold) else None,
                "margin": margin if math.isfinite(margin) else None,
                # from the suite's cured runs (0, their median) to the threshold (1): one scale for all
                "way_to_threshold": way if math.isfinite(way) else None,
                "past": step is not None,
                "settled_at_step": step,
                "unjudged": why_not,
                # the plateau rule sets the update ratio to infinity off a plateau (`series`)
                "note": OFF_PLATEAU if not why_not and math.isinf(value) else None,
            }
        )
    return rows


OFF_PLATEAU = (
    "the run ends off a plateau: its loss below half its first, "
    "or below 90% of it with outputs that differ across the batch"
)


def _finite_note(view: View) -> str:
    transient = view.nonfinite_at()
    if transient is None:
        return "every traced value finite"
    return f"a non-finite value at step {transient}, and finite values after it: not what the run ends in"


def nearest(rows: list[dict]) -> dict | None:
    """The judged mechanism whose statistic came closest to its threshold without passing it: the
    farthest on its way from the suite's cured runs to the threshold (`way_to_threshold`), as
    margins in decades and in log-odds are not comparable; by margin where no row has a way."""
    short = [r for r in rows if r["margin"] is not None and not r["past"]]
    if any(r.get("way_to_threshold") is not None for r in short):
        short = [r for r in short if r.get("way_to_threshold") is not None]
        return max(short, key=lambda r: r["way_to_threshold"], default=None)
    return max(short, key=lambda r: r["margin"], default=None)


def _way(value: float, cured: float, threshold: float, mechanism: Mechanism) -> float:
    """How far `value` has gone from the cured runs' median toward the threshold, in the fitted scale:
    0 at the median, 1 at the threshold (past 1: past it; below 0: farther from it than the cures)."""
    whole = _margin(cured, threshold, mechanism)  # negative: the cured median is short of the threshold
    here = _margin(value, threshold, mechanism)
    if not (math.isfinite(whole) and whole < 0 and not math.isnan(here)):
        return math.nan
    return 1 - here / whole if math.isfinite(here) else (math.inf if here > 0 else -math.inf)


def _margin(value: float, threshold: float, mechanism: Mechanism) -> float:
    """How far `value` is past `threshold` (negative: short of it), in the fitted scale: decades for
    a ratio, log-odds for a share."""
    if math.isnan(value) or not 0 < threshold < (math.inf if mechanism.scale == "log" else 1):
        return math.nan  # a threshold outside the scale (a fit that no value can pass) has no distance
    if mechanism.scale == "log":
        scaled = -math.inf if value <= 0 else math.log10(value) if math.isfinite(value) else math.inf
        gap = scaled - math.log10(threshold)
    else:
        share = np.clip(np.array([value, threshold]), FLOOR, 1 - FLOOR)
        logits = _logit(share)
        gap = float(logits[0] - logits[1])
    return -gap if mechanism.below else gap


def _unjudged(view: View, mechanism: Mechanism, value: float) -> str | None:
    """Why a mechanism's statistic is missing from this trace, in what the trace lacks."""
    if mechanism.statistic == "dead_units" and not _hidden(view, "relu", "leaky"):
        return "no hidden ReLU-family layer traced"
    if mechanism.statistic == "closed_paths" and not _hidden(view, "tanh", "sigmoid", "hardtanh"):
        return "no hidden tanh, sigmoid or hard tanh layer traced"
    if mechanism.statistic == "spread_ratio" and not len(view.scalar("out_spread")):
        return "no output spread recorded (an output that is not a tensor, or no traced step)"
    if mechanism.statistic == "update_ratio":
        if not view.weighted() or not view.stat("upd_ratio", view.weighted()).shape[1]:
            return "no optimizer step seen (no weight update traced)"
        if not len(view.scalar("loss")):
            return "no loss logged: no plateau to read"
    if math.isnan(value):
        return "no traced step carries the statistic"
    return None


def _confidence(reference: list, value: float, threshold: float, below: bool) -> float:
    """Of the fitted runs at least this far past the threshold, the share that were this mechanism's
    sick runs; for a value past every fitted run, the share among all those past the threshold;
    NaN where no fitted run passed it."""

    def past(bound: float) -> list[int]:
        return [sick for v, sick in reference if (v <= bound if below else v >= bound)]

    at_least = past(value) or past(threshold)
    return float(np.mean(at_least)) if at_least else math.nan


def _rule(mechanism: str):
    def check(view: View) -> Finding:
        found = view.memo("failbench", lambda: diagnose(view, _thresholds()))
        hit = next((d for d in found if d.mechanism == mechanism), None)
        return fire(hit.step, hit.why) if hit else QUIET

    return check


_FITTED: dict | None = None


def _thresholds() -> dict:
    global _FITTED
    if _FITTED is None:
        _FITTED = load_fit()["thresholds"]
    return _FITTED


SOURCE = "failbench harness/detectors/own.py, thresholds fitted on seeds 0-9 (harness/detectors/own_fit.json)"
TOOL = Tool(
    "failbench",
    (
        Rule("exploding", EXPLODING, _rule(EXPLODING), SOURCE),
        *(Rule(m.name, m.name, _rule(m.name), SOURCE) for m in MECHANISMS),
    ),
    reports="in_order",
)


# -- calibration: from a store of the quick grid to own_fit.json ---------------------------------
def traced_runs(tracker, cases: list, profile: str = "quick"):
    """(case, run, trace) for every judged run of the cases that has a trace (the store read once a run)."""
    from failbench.analysis import load_runs

    for case in cases:
        for run in load_runs(tracker, case, profile).to_dict("records"):
            trace = tracker.trace(run["run_id"], run.get("artifact_uri"))
            if trace is not None and not trace.empty:
                yield case, run, trace


def collect(tracker, cases: list, profile: str = "quick") -> pd.DataFrame:
    """One row per judged run of the cases that has a trace: case, class, variant, seed, verdict and
    each mechanism's statistic."""
    rows = []
    for case, run, trace in traced_runs(tracker, cases, profile):
        view = View(trace)  # one pivot of the trace for both reads below
        rows.append(
            {
                "case": case.name,
                "failure_class": case.failure_class,
                "variant": run["variant"],
                "seed": int(run["seed"]),
                "verdict": run["verdict"],
                "expected": case.diagnosis_class(run["verdict"], run),
                "nonfinite": float(view.ends_nonfinite_at() is not None),
                **features(view),
            }
        )
    return pd.DataFrame(rows)


def fix_outcomes(runs: pd.DataFrame) -> dict[str, dict[str, dict[str, int]]]:
    """Per case, per variant: its runs' verdict counts (the cures a diagnosis points to)."""
    out: dict[str, dict[str, dict[str, int]]] = {}
    for (case, variant), group in runs.groupby(["case", "variant"], sort=True):
        out.setdefault(case, {})[variant] = {str(k): int(v) for k, v in group["verdict"].value_counts().items()}
    return out


def calibrate(runs: pd.DataFrame, cases: list, profile: str) -> dict:
    """The document `failbench calibrate` writes: the thresholds, what they were fitted on, and per
    case what the diagnosis tells a user (its post, its class, its fixes' verdicts)."""
    seeds = sorted(runs["seed"].unique().tolist()) if len(runs) else []
    return {
        "format": 1,
        "fitted_on": {"profile": profile, "seeds": seeds, "runs": int(len(runs))},
        "thresholds": fit(runs),
        "cases": {
            case.name: {
                "title": case.title,
                "post": case.post,
                "failure_class": case.failure_class,
                "fixes": fix_outcomes(runs).get(case.name, {}),
            }
            for case in cases
        },
    }


def verdicts_from_features(runs: pd.DataFrame, thresholds: dict) -> pd.Series:
    """What the detector reports on each run, from its `collect` row: the first mechanism in the
    reporting order whose statistic ends past its threshold ("exploding" first), else "none". The
    same as `diagnose` on the trace (a statistic ends past a threshold iff its last `persist` traced
    values are past it), without re-reading the traces."""
    out = []
    for row in runs.to_dict("records"):
        said = EXPLODING if row.get("nonfinite") else "none"
        if said == "none":
            for mechanism in MECHANISMS:
                fit_ = thresholds.get(mechanism.statistic)
                value = row.get(mechanism.statistic, math.nan)
                if not fit_ or not math.isfinite(fit_["threshold"]) or not math.isfinite(value):
                    continue
                if (value <= fit_["threshold"]) if mechanism.below else (value >= fit_["threshold"]):
                    said = mechanism.name
                    break
        out.append(said)
    return pd.Series(out, index=runs.index, name="reported")


def leave_one_case_out(fitted_on: pd.DataFrame, scored: pd.DataFrame) -> pd.DataFrame:
    """Per case: the thresholds fitted without it (on `fitted_on`), its runs in `scored` judged with
    them. On a failure the detector has never seen, the right answers are "none" or the right
    mechanism; a confident other class is the error to count. A run sick for another reason
    (`Case.diagnosis_class` None) counts among the sick runs and what was said of them only."""
    rows = []
    for case in sorted(scored["case"].unique()):
        thresholds = fit(fitted_on[fitted_on["case"] != case])
        mine = scored[scored["case"] == case]
        said = verdicts_from_features(mine, thresholds)
        sick = mine["verdict"].isin(("symptom", "diverged"))
        cured = mine["verdict"] == "cured"
        expected = _expected(mine)
        right = said == expected
        unknown = expected.isna()
        rows.append(
            {
                "case": case,
                "sick runs": int(sick.sum()),
                "right mechanism": int((sick & right).sum()),
                "none": int((sick & (said == "none")).sum()),
                "another class": int((sick & ~unknown & ~right & (said != "none")).sum()),
                "cured runs": int(cured.sum()),
                "false alarms": int((cured & (said != "none")).sum()),
                "said on sick runs": ", ".join(f"{k} {v}" for k, v in said[sick].value_counts().items()),
            }
        )
    return pd.DataFrame(rows)


def write_fit(document: dict, out: Path | None = None) -> Path:
    """`calibrate`'s document to the file `failbench diagnose` reads (default FIT_FILE)."""
    out = out or FIT_FILE
    out.write_text(json.dumps(document, indent=1, sort_keys=True) + "\n")
    return out


def fit_text(document: dict) -> str:
    """One line per fitted threshold: the mechanism, the statistic, its side, and the medians of the
    sick and the cured runs it separates."""
    lines = []
    for stat, fitted in document["thresholds"].items():
        side = "<=" if fitted["below"] else ">="
        lines.append(
            f"{fitted['mechanism']}: {stat} {side} {fitted['threshold']:.4g} "
            f"(sick median {median_text(fitted['sick_median'])} over {fitted['sick_runs']} runs, "
            f"cured median {median_text(fitted['cured_median'])} over {fitted['cured_runs']})"
        )
    return "\n".join(lines)
