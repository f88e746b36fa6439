"""Read a case's runs back from the store and judge them against its expectations.

`failbench check` and the report notebooks both call these functions, so a report and a CI verdict
cannot disagree. Only runs of the case's current code (same code hash, harness/identity.py) count:
results of edited code are never mixed with old ones.
"""

from __future__ import annotations

import json

import pandas as pd

from failbench.contract import VERDICTS, Case, Expectation
from failbench.formatting import markdown_table
from failbench.identity import code_hash
from failbench.stats import Share, share
from failbench.tracking import Tracker

FINAL = "final/"


def load_runs(
    tracker: Tracker,
    case: Case,
    profile: str,
    current_source: bool = True,
    selector: str = "",
    explorations: bool = False,
) -> pd.DataFrame:
    """One row per grid point (variant, axes, seed) of `profile`: its newest finished child run,
    with the final metrics as columns and the verdict recomputed from the case's symptom today.

    `selector` is one more MLflow filter (a commit, a torch version, a sweep: `failbench compare`);
    runs made with `--set` overrides are explorations, never judged unless `explorations` is set."""
    experiment_id = tracker.experiment_id(case.name, create=False)
    if experiment_id is None:
        return pd.DataFrame()
    filters = [f"tags.profile = '{profile}'", "attributes.status = 'FINISHED'"]
    if not explorations:
        filters.append("tags.overrides = '{}'")
    if current_source:
        filters.append(f"tags.code_hash = '{code_hash(case)}'")
    if selector:
        filters.append(selector)
    rows = []
    for run in tracker.runs(experiment_id, " and ".join(filters)):
        tags = run.data.tags
        if "point_hash" not in tags:
            continue
        metrics = {k[len(FINAL) :]: v for k, v in run.data.metrics.items() if k.startswith(FINAL)}
        axes = json.loads(tags.get("axes", "{}"))
        rows.append(
            {
                "run_id": run.info.run_id,
                "artifact_uri": run.info.artifact_uri,
                "start_time": run.info.start_time,
                "variant": tags["variant"],
                "seed": int(tags["seed"]),
                "axes": tags.get("axes", "{}"),
                "device": tags.get("device"),
                "threads": tags.get("threads"),
                "torch_version": tags.get("torch_version"),
                "cpu_capability": tags.get("cpu_capability", "unrecorded"),
                "cpu_model": tags.get("cpu_model", "unrecorded"),
                "code_hash": tags.get("code_hash"),
                "config_hash": tags.get("config_hash"),
                "env_hash": tags.get("env_hash"),
                "git_commit": tags.get("git_commit"),
                "overrides": tags.get("overrides", "{}"),
                **{f"axis.{k}": v for k, v in axes.items()},
                **metrics,
            }
        )
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows).sort_values("start_time")
    # The newest run of a grid point speaks for it: a forced re-run, or one on another device or
    # thread count (stored beside the older one, never counted as a second seed).
    frame = frame.drop_duplicates(subset=["variant", "axes", "seed"], keep="last")
    frame["verdict"] = [case.verdict(_metrics(row), bool(row.get("diverged", 0.0))) for row in frame.to_dict("records")]
    return frame.reset_index(drop=True)


def judged_metrics(case: Case) -> tuple[str, ...]:
    """The final metrics a verdict or an expectation reads, then the ones a report plots first:
    what `snapshot` keeps and `compare` tests."""
    names = [t.metric for t in (*case.symptom.all_of, *case.task.all_of)]
    names += [t.metric for e in case.expectations for t in e.also]
    names += list(case.key_metrics)
    return tuple(dict.fromkeys(names))


def _metrics(row: dict) -> dict[str, float]:
    return {k: v for k, v in row.items() if isinstance(v, float)}


def _selected(runs: pd.DataFrame, expectation: Expectation) -> pd.DataFrame:
    if runs.empty:
        return runs
    mask = runs["variant"] == expectation.variant
    for axis, value in expectation.where.items():
        column = f"axis.{axis}"
        mask &= (runs[column] == value) if column in runs else False
    return runs[mask]


def matches(expectation: Expectation, runs: pd.DataFrame) -> pd.Series:
    """Per run the expectation judges (its variant, at its `where`): whether the run shows what it
    claims (its verdict among `shows`, and every `also` threshold met). Indexed as `runs`."""
    chosen = _selected(runs, expectation)
    return pd.Series(
        [
            row["verdict"] in expectation.shows and all(t.holds(_metrics(row)) for t in expectation.also)
            for row in chosen.to_dict("records")
        ],
        index=chosen.index,
        dtype=bool,
    )


def seed_range(runs: pd.DataFrame, first_seed: int, seeds: int) -> pd.DataFrame:
    """The runs of seeds first_seed..first_seed+seeds-1: a store may hold several ranges (the
    reference seeds and a held-out range), and each is judged by itself."""
    if runs.empty:
        return runs
    return runs[runs["seed"].between(first_seed, first_seed + seeds - 1)].reset_index(drop=True)


def evaluate(case: Case, runs: pd.DataFrame, profile: str) -> pd.DataFrame:
    """One row per expectation that applies to `profile`: what was expected, what was observed,
    the share of matching seeds (a Share, with its Wilson 95% interval), and whether it is thin
    (< 10 seeds). An expectation passes on its observed share; the interval says how much that
    share can be trusted, and is printed beside it."""
    rows = []
    for exp in case.expectations:
        if profile not in exp.profiles:
            continue
        chosen = _selected(runs, exp)
        n = len(chosen)
        if n:
            n_match = int(matches(exp, chosen).sum())
            counts = chosen["verdict"].value_counts()
            observed = ", ".join(f"{counts[v]} {v}" for v in counts.index)
        else:
            n_match, observed = 0, "no runs"
        matched = share(n_match, n)
        rows.append(
            {
                "variant": exp.variant,
                "where": exp.where_text(),
                "expected": exp.describe(),
                "seeds": n,
                "share": matched,
                "thin": matched.thin,
                "observed": observed,
                "passed": bool(n) and matched.value >= exp.min_share - 1e-12,
                "why": exp.why,
            }
        )
    return pd.DataFrame(rows)


def result_label(passed: bool, thin: bool) -> str:
    """An expectation's result as check and the reports print it: `pass`, `FAIL`, `(thin)` added
    when fewer than 10 seeds judged it."""
    return ("pass" if passed else "FAIL") + (" (thin)" if thin else "")


def summary_table(case: Case, runs: pd.DataFrame, metrics: tuple[str, ...] | None = None) -> pd.DataFrame:
    """Per variant (and axis point): seeds, the share of each verdict (a Share, with its 95%
    interval), median of the final metrics. The one place verdict shares are counted: `table`,
    the case reports and the summary's heatmap read it."""
    if runs.empty:
        return runs
    metrics = tuple(m for m in (metrics or case.key_metrics) if m in runs)
    keys = ["variant", *[c for c in runs.columns if c.startswith("axis.")]]
    grouped = runs.groupby(keys, sort=False)
    table = grouped.size().rename("seeds").to_frame()
    for verdict in VERDICTS:
        counts = grouped["verdict"].apply(lambda v, w=verdict: int((v == w).sum()))
        table[verdict] = [share(int(k), int(n)) for k, n in zip(counts, table["seeds"])]
    for metric in metrics:
        if _yes_no(runs[metric]):  # a median of 0/1 flags says nothing: count them, as verdicts
            counts = grouped[metric].agg(lambda v: (int((v == 1).sum()), int(v.notna().sum())))
            table[metric] = [share(k, n) for k, n in counts]
        else:
            table[f"median {metric}"] = grouped[metric].median()
    return table.reset_index()


def _yes_no(values: pd.Series) -> bool:
    """A metric that is a flag (every value 0 or 1, such as `left_chance`)."""
    present = values.dropna()
    return not present.empty and bool(present.isin((0.0, 1.0)).all())


def to_markdown(table: pd.DataFrame) -> str:
    """`summary_table` as a GitHub table: numbers in 3 significant figures, each verdict's share
    with its 95% interval."""
    shares = [c for c in table.columns if table[c].map(lambda v: isinstance(v, Share)).any()]
    headers = {c: f"{c} (95% CI)" for c in shares}
    return markdown_table(table.to_dict("records"), list(table.columns), headers)


def step_history(tracker: Tracker, runs: pd.DataFrame, metrics: tuple[str, ...]) -> pd.DataFrame:
    """Step metrics of every run in long form: variant, axes, seed, metric, step, value (every
    logged step, from each run's history artifact)."""
    axis_cols = [c for c in runs.columns if c.startswith("axis.")]
    frames = []
    for row in runs.to_dict("records"):
        for metric, steps, values in tracker.history(row["run_id"], metrics, row["artifact_uri"]):
            frames.append(
                pd.DataFrame(
                    {
                        "variant": row["variant"],
                        "seed": row["seed"],
                        "metric": metric,
                        "step": steps,
                        "value": values,
                        **{c: row[c] for c in axis_cols},
                    }
                )
            )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def picture_paths(
    tracker: Tracker, runs: pd.DataFrame, names: tuple[str, ...], seed: int, where: dict
) -> dict[str, dict[str, str]]:
    """variant -> picture name -> local PNG path, for one seed at one axis point. A run that
    diverged before logging its pictures simply has none."""
    chosen = runs[runs["seed"] == seed]
    for axis, value in where.items():
        chosen = chosen[chosen[f"axis.{axis}"] == value]
    return {
        row["variant"]: tracker.pictures(row["run_id"], names, row["artifact_uri"]) for row in chosen.to_dict("records")
    }
