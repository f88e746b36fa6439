"""`failbench compare BASE HEAD`: two sets of runs, per case x variant x axis point x judged metric.

A side is named by a selector: `commit:SHA` (a prefix of the commit every run is tagged with),
`torch:VERSION`, `sweep:RUN_ID` (one `failbench run`, `--set` explorations included), `current`
(what `check` judges: the newest runs of the current code), or the path of a snapshot file
(`failbench snapshot`). A bare word is read as a snapshot if such a file exists, a sweep if it is
a 32-hex run id, a torch version if it looks like one, else a commit.

Per metric it reports both medians, their ratio and a two-sided Mann-Whitney U p-value where both
sides have >= 6 seeds; a change counts only when it is significant (p < alpha) and larger than a
minimum relative change, asv's two conditions (`asv compare`: factor 1.1 and a Mann-Whitney test),
so a bit-level float difference never fails a build. Verdict shares that moved are listed with their
95% intervals; a flip is a grid point whose most common verdict changed. Same seed, same threads,
same torch and CPU give identical bits, and the table says so where two sides are identical.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from failbench.analysis import judged_metrics, load_runs
from failbench.contract import VERDICTS, Case
from failbench.formatting import markdown_table, number, share_text
from failbench.stats import DEFAULT_ALPHA, DEFAULT_MIN_CHANGE, mann_whitney_p, share

KEY = ["case", "variant", "axes"]


class SelectorError(ValueError):
    """A selector that names nothing usable; one line for the user."""


@dataclass(frozen=True)
class Side:
    """One set of runs: a label for the table and one row per grid point (KEY + seed)."""

    label: str
    runs: pd.DataFrame


def classify(text: str) -> tuple[str, str]:
    """(kind, value) of a selector: commit, torch, sweep, current or snapshot."""
    kind, sep, value = text.partition(":")
    if sep and kind in ("commit", "torch", "sweep", "snapshot"):
        if not value:
            raise SelectorError(f"selector {text!r} names no {kind}")
        return kind, value
    if text == "current":
        return "current", ""
    if Path(text).suffix == ".json" or Path(text).is_file():
        return "snapshot", text
    if re.fullmatch(r"[0-9a-f]{32}", text):
        return "sweep", text
    if re.fullmatch(r"\d+\.\d+(\.\d+)?([.+-]\w+)*", text):
        return "torch", text
    if re.fullmatch(r"[0-9a-f]{4,40}(-dirty)?", text):
        return "commit", text
    raise SelectorError(
        f"cannot read selector {text!r}; use commit:SHA, torch:VERSION, sweep:RUN_ID, current, or a snapshot file"
    )


def load_side(text: str, cases: list[Case], profile: str, tracker=None) -> Side:
    from failbench.snapshot import read_snapshot

    kind, value = classify(text)
    if kind == "snapshot":
        return Side(f"snapshot {value}", read_snapshot(Path(value), cases, profile))
    if tracker is None:
        raise SelectorError(f"selector {text!r} needs a store")
    if not re.fullmatch(r"[\w.+-]+", value or "x"):
        raise SelectorError(f"selector {text!r} holds characters no commit, version or run id has")
    frames = []
    for case in cases:
        selectors = _run_selectors(tracker, case, kind, value)
        runs = [
            load_runs(
                tracker, case, profile, current_source=kind == "current", selector=s, explorations=kind == "sweep"
            )
            for s in selectors
        ]
        runs = [r for r in runs if not r.empty]
        if runs:
            newest = pd.concat(runs).sort_values("start_time")
            newest = newest.drop_duplicates(subset=["variant", "axes", "seed"], keep="last")
            frames.append(newest.assign(case=case.name))
    if not frames:
        raise SelectorError(f"no finished {profile} runs match {text!r} in {tracker.uri}")
    return Side(f"{kind} {value}".strip(), pd.concat(frames, ignore_index=True))


def _run_selectors(tracker, case: Case, kind: str, value: str) -> list[str]:
    """MLflow filters for the child runs a selector names. A commit names the runs its sweeps
    stand behind: those it ran, and those it reused because its code and environment hashes were
    the same (a commit that changes a comment re-runs nothing, and still has its results)."""
    if kind == "current":
        return [""]
    if kind == "torch":
        return [f"tags.torch_version = '{value}'"]
    if kind == "sweep":
        return [tracker.sweep_filter(value)]
    experiment_id = tracker.experiment_id(case.name, create=False)
    if experiment_id is None:
        return []
    sweeps = tracker.runs(experiment_id, f"tags.sweep = 'true' and tags.git_commit LIKE '{value}%'")
    dirty = value.endswith("-dirty")  # an edited checkout is not the commit it started from
    stands = {
        (t["code_hash"], t["env_hash"], t["device"], t["threads"])
        for t in (r.data.tags for r in sweeps)
        if "code_hash" in t and t["git_commit"].endswith("-dirty") == dirty
    }
    return [
        f"tags.code_hash = '{c}' and tags.env_hash = '{e}' and tags.device = '{d}' and tags.threads = '{n}'"
        for c, e, d, n in sorted(stands)
    ]


@dataclass
class Comparison:
    base: str
    head: str
    metrics: pd.DataFrame  # one row per KEY x metric
    verdicts: pd.DataFrame  # one row per KEY whose verdict shares moved
    only_base: int = 0
    only_head: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def significant(self) -> pd.DataFrame:
        return self.metrics[self.metrics["status"] == "changed"]

    @property
    def flips(self) -> pd.DataFrame:
        return self.verdicts[self.verdicts["flip"]] if not self.verdicts.empty else self.verdicts

    @property
    def identical(self) -> bool:
        return (
            bool(len(self.metrics))
            and (self.metrics["status"] == "identical").all()
            and self.verdicts.empty
            and not self.only_base
            and not self.only_head
        )

    @property
    def failed(self) -> bool:
        return bool(len(self.significant) or len(self.flips))


def _by_seed(runs: pd.DataFrame, metric: str) -> dict[int, float]:
    if metric not in runs:
        return {}
    return {int(s): float(v) for s, v in zip(runs["seed"], runs[metric]) if not pd.isna(v)}


def _same_bits(a: dict[int, float], b: dict[int, float]) -> bool:
    return a.keys() == b.keys() and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def relative_change(base: float, head: float) -> float:
    """|head - base| over the larger magnitude: 0 for equal, 1 for a sign flip or a drop to 0."""
    scale = max(abs(base), abs(head))
    return abs(head - base) / scale if scale > 0 else 0.0


def _modal(verdicts: pd.Series) -> frozenset[str]:
    counts = verdicts.value_counts()
    return frozenset(counts[counts == counts.max()].index)


def compare(
    cases: list[Case], base: Side, head: Side, alpha: float = DEFAULT_ALPHA, min_change: float = DEFAULT_MIN_CHANGE
) -> Comparison:
    by_case = {c.name: c for c in cases}
    base_groups = dict(list(base.runs.groupby(KEY, sort=False)))
    head_groups = dict(list(head.runs.groupby(KEY, sort=False)))
    shared = [k for k in base_groups if k in head_groups]
    if not shared:
        raise SelectorError(f"{base.label} and {head.label} share no grid point (case, variant, axes)")
    rows, moved = [], []
    for key in shared:
        b, h = base_groups[key], head_groups[key]
        for metric in judged_metrics(by_case[key[0]]):
            bv, hv = _by_seed(b, metric), _by_seed(h, metric)
            if not bv and not hv:
                continue
            mb = float(pd.Series(list(bv.values())).median()) if bv else math.nan
            mh = float(pd.Series(list(hv.values())).median()) if hv else math.nan
            p = mann_whitney_p(list(bv.values()), list(hv.values()))
            change = relative_change(mb, mh) if bv and hv else math.nan
            if _same_bits(bv, hv):
                status = "identical"
            elif p is None:
                status = "too few seeds"
            elif p < alpha and change >= min_change:
                status = "changed"
            else:
                status = "within thresholds"
            rows.append(
                {
                    **dict(zip(KEY, key)),
                    "metric": metric,
                    "seeds": f"{len(bv)}/{len(hv)}",
                    "median_base": mb,
                    "median_head": mh,
                    "ratio": mh / mb if mb else math.nan,
                    "p": p,
                    "status": status,
                }
            )
        shares_b = {v: share(int((b["verdict"] == v).sum()), len(b)) for v in VERDICTS}
        shares_h = {v: share(int((h["verdict"] == v).sum()), len(h)) for v in VERDICTS}
        if any(shares_b[v].value != shares_h[v].value for v in VERDICTS):
            moved.append(
                {
                    **dict(zip(KEY, key)),
                    "base": _shares(shares_b),
                    "head": _shares(shares_h),
                    "flip": _modal(b["verdict"]) != _modal(h["verdict"]),
                }
            )
    return Comparison(
        base.label,
        head.label,
        pd.DataFrame(rows),
        pd.DataFrame(moved, columns=[*KEY, "base", "head", "flip"]),
        only_base=len(set(base_groups) - set(head_groups)),
        only_head=len(set(head_groups) - set(base_groups)),
        notes=[expected_agreement(base.runs, head.runs)],
    )


def _identities(runs: pd.DataFrame) -> set[tuple]:
    columns = ["case", "code_hash", "env_hash", "cpu_model"]
    if any(c not in runs for c in columns):
        return {("unrecorded",)}
    return set(runs[columns].itertuples(index=False, name=None))


def _values(runs: pd.DataFrame, column: str) -> str:
    return "/".join(sorted(set(runs[column]))) if column in runs else "unrecorded"


def expected_agreement(base: pd.DataFrame, head: pd.DataFrame) -> str:
    """Whether the two sides should agree bit for bit (the same code, environment, CPU capability
    and CPU model: the same kernels on the same caches) or only statistically. Another capability's
    kernels round differently, and so may another CPU model at the same capability (oneDNN picks
    its kernels and their blocking by the exact instruction set and caches): blurry_inpainting's
    baseline seed 0 ends at PSNR 17.7866 dB on an AMD EPYC at AVX512, 17.7812 on another AVX512
    CPU, 17.7835 under AVX2, and a chaotic training lands its seeds elsewhere."""
    a, b = _identities(base), _identities(head)
    if a == b and all(h != "unrecorded" for ident in a for h in ident[1:]):
        return (
            f"Both sides ran the same code and environment on CPU capability {_values(base, 'cpu_capability')} "
            f"({_values(base, 'cpu_model')}): bit-identical results are expected, so any difference is a change."
        )
    reasons = []
    for column, what in (("cpu_capability", "CPU capability"), ("cpu_model", "CPU")):
        if _values(base, column) != _values(head, column):
            reasons.append(f"{what} {_values(base, column)} vs {_values(head, column)}")
    if {i[:2] for i in a} != {i[:2] for i in b}:
        reasons.append("other code")
    if not reasons:
        reasons.append("another environment, or one side that does not record it")
    return f"Only statistical agreement is expected ({'; '.join(reasons)}): a difference counts when it is significant."


def _shares(shares: dict) -> str:
    return ", ".join(f"{v} {share_text(s)}" for v, s in shares.items() if s.k)


def _axes(text: str) -> str:
    return ", ".join(f"{k}={v}" for k, v in json.loads(text).items()) or "-"


def _cell(column: str, value) -> str:
    if column == "axes":
        return _axes(value)
    if column == "flip":
        return "yes" if value else "no"
    return number(value)


def _table(frame: pd.DataFrame, columns: list[str]) -> list[str]:
    return markdown_table(frame.to_dict("records"), columns, cell=_cell).split("\n")


def to_markdown(result: Comparison, alpha: float = DEFAULT_ALPHA, min_change: float = DEFAULT_MIN_CHANGE) -> str:
    """The comparison as a PR comment: the verdict first, then what changed, then everything."""
    m = result.metrics
    counts = m["status"].value_counts() if len(m) else pd.Series(dtype=int)
    lines = [f"## failbench compare: `{result.base}` -> `{result.head}`", ""]
    if result.identical:
        lines.append(
            "**Identical**: every compared metric is the same, bit for bit, on every seed "
            "(same seeds, threads, torch and CPU give identical bits)."
        )
    elif result.failed:
        lines.append(
            f"**Regression check failed**: {len(result.significant)} significant change(s), "
            f"{len(result.flips)} verdict flip(s)."
        )
    else:
        lines.append("**No significant change.**")
    lines += [
        "",
        f"{len(m)} metric(s) over {m[KEY].drop_duplicates().shape[0] if len(m) else 0} grid point(s): "
        + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("identical", "within thresholds", "changed", "too few seeds"))
        + f". A change counts when p < {alpha:g} (two-sided Mann-Whitney U, >= 6 seeds a side) "
        f"and the medians differ by >= {min_change:.0%}.",
    ]
    lines += [n for n in result.notes if n]
    if result.only_base or result.only_head:
        lines.append(
            f"Grid points in one side only (not compared): {result.only_base} in base, {result.only_head} in head."
        )
    columns = ["case", "variant", "axes", "metric", "seeds", "median_base", "median_head", "ratio", "p", "status"]
    if len(result.significant):
        lines += ["", "### Significant changes", "", *_table(result.significant, columns)]
    if not result.verdicts.empty:
        lines += [
            "",
            "### Verdict shares that moved (95% Wilson intervals)",
            "",
            *_table(result.verdicts, [*KEY, "base", "head", "flip"]),
        ]
    if len(m) and not result.identical:
        lines += ["", "<details><summary>Every compared metric</summary>", "", *_table(m, columns), "", "</details>"]
    return "\n".join(lines) + "\n"
