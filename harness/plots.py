"""The report's figures. Each takes tidy data from harness.analysis and returns a matplotlib Figure,
so a notebook cell is one call and the figures can be tested without Jupyter."""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib.image as mpimg
import matplotlib.pyplot as plt
import matplotlib.ticker as ticker
import numpy as np
import pandas as pd
import seaborn as sns

# Figures are made at the dots per inch they are saved at: matplotlib measures the text once for
# the layout and the save (at 100 then 90 dpi it measured it twice), ~1/6 of a figure's time.
DPI = 90
# A metric whose bulk (5th to 95th percentile) spans more than this many decades gets a log axis;
# below it a linear axis reads better (a PSNR of 17-19 dB, a bias of -0.05..+0.05).
_DECADES_FOR_LOG = 2
# Curves: beyond this many variants one panel of lines is spaghetti, so each fix gets its own
# panel beside the baseline.
_VARIANTS_PER_PANEL = 4
_BASELINE_COLOUR = "black"
VERDICT_COLOURS = {"symptom": "tab:red", "cured": "tab:green", "unlearned": "tab:orange", "diverged": "tab:gray"}


def choose_scale(values) -> tuple[str, float | None]:
    """('linear' | 'log' | 'symlog', linthresh) for a metric's values, chosen for legibility:
    linear unless the bulk of the values spans more than _DECADES_FOR_LOG decades. Log when they are
    all positive; symlog when they sit on both sides of zero or are all negative, with the linear
    band at the decade of the bulk's smallest magnitude (never at a lone 1e-10 that would fill the
    axis with empty decades)."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return "linear", None
    magnitudes = np.abs(v[v != 0])
    if not len(magnitudes):
        return "linear", None
    small, big = np.percentile(magnitudes, [5, 100])
    if small <= 0 or np.log10(big / small) <= _DECADES_FOR_LOG:
        return "linear", None
    if (v > 0).all():
        return "log", None
    return "symlog", float(10 ** np.floor(np.log10(small)))


def _apply_scale(ax, values, axis: str = "y") -> None:
    scale, linthresh = choose_scale(values)
    if scale == "linear":
        return
    setter = ax.set_yscale if axis == "y" else ax.set_xscale
    target = ax.yaxis if axis == "y" else ax.xaxis
    if scale == "log":
        setter("log")
    else:
        setter("symlog", linthresh=linthresh)
        decades = np.log10(np.nanmax(np.abs(values)) / linthresh)
        target.set_major_locator(ticker.SymmetricalLogLocator(base=100 if decades > 6 else 10, linthresh=linthresh))
    target.set_minor_locator(ticker.NullLocator())


@contextmanager
def _same_jitter(seed: int = 0) -> Iterator[None]:
    """numpy's global generator seeded, and put back as it was after: the jitter of a strip plot is
    then the same at every rendering, so the same runs always give the same picture."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _quantiles(history: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Median and interquartile range over seeds, per key and step."""
    grouped = history.groupby([*keys, "step"], sort=False)["value"]
    return pd.DataFrame(
        {"median": grouped.median(), "q25": grouped.quantile(0.25), "q75": grouped.quantile(0.75)}
    ).reset_index()


def _band(ax, stats: pd.DataFrame, colour, label: str, linewidth: float = 1.6) -> None:
    stats = stats.sort_values("step")
    ax.fill_between(stats["step"], stats["q25"], stats["q75"], color=colour, alpha=0.2, linewidth=0)
    ax.plot(stats["step"], stats["median"], color=colour, linewidth=linewidth, label=label)


def _axis_label(combo: dict) -> str:
    return ", ".join(f"{column[len('axis.') :]} = {value}" for column, value in combo.items())


def stepped_metrics(history: pd.DataFrame, metrics: tuple[str, ...]) -> tuple[str, ...]:
    """The metrics logged at more than two steps: a metric logged only at the end is left to
    `finals`, where a lone point reads better than a curve."""
    if history.empty:
        return ()
    return tuple(m for m in metrics if history.loc[history["metric"] == m, "step"].nunique() > 2)


def curves(history: pd.DataFrame, metric: str, order: list[str]) -> plt.Figure:
    """One metric against step: the median over seeds with a band from the 25th to the 75th
    percentile. One row per axis point (network x lr), so seeds of different axis points are never
    pooled. Up to _VARIANTS_PER_PANEL variants share a panel; beyond, each fix gets its own panel
    with the baseline (black) beside it, all panels of an axis point on one y axis."""
    data = history[history["metric"] == metric]
    facets = [c for c in data.columns if c.startswith("axis.")]
    combos = data[facets].drop_duplicates().sort_values(facets).to_dict("records") if facets else [{}]
    present = set(data["variant"])
    variants = [v for v in order if v in present]
    baseline = variants[0] if variants else None
    together = len(variants) <= _VARIANTS_PER_PANEL
    fixes = [None] if together else variants[1:]
    palette = dict(zip(variants, sns.color_palette("tab10" if len(variants) <= 10 else "tab20", len(variants))))
    palette[baseline] = _BASELINE_COLOUR
    stats = _quantiles(data, ["variant", *facets])
    # without axes, many fixes wrap onto rows of 5; with axes, one row per axis point
    wrap = 5 if not facets else max(len(fixes), 1)
    rows_per_combo = -(-len(fixes) // wrap)
    n_cols, n_rows = min(len(fixes), wrap), rows_per_combo * len(combos)
    width = 3.0 if not together else 5.5
    fig, axes = plt.subplots(
        n_rows,
        n_cols,
        figsize=(width * n_cols + 0.8, 2.4 * n_rows + 0.6),
        squeeze=False,
        sharex=True,
        sharey="row" if facets else True,
        dpi=DPI,
    )
    for c, combo in enumerate(combos):
        mask = np.ones(len(stats), dtype=bool)
        for column, value in combo.items():
            mask &= (stats[column] == value).to_numpy()
        here = stats[mask]
        for f, fix in enumerate(fixes):
            ax = axes[c * rows_per_combo + f // wrap][f % wrap]
            shown = variants if fix is None else [baseline, fix]
            for variant in shown:
                part = here[here["variant"] == variant]
                if not part.empty:
                    _band(ax, part, palette[variant], variant, 2.2 if variant == baseline else 1.6)
            _apply_scale(ax, data["value"])
            title = [] if fix is None else [fix]
            if combo:
                title.append(_axis_label(combo))
            ax.set_title("\n".join(title), fontsize=9)
            ax.tick_params(labelsize=8)
            if f % wrap == 0:
                ax.set_ylabel(metric, fontsize=9)
        for f in range(len(fixes), rows_per_combo * n_cols):
            axes[c * rows_per_combo + f // wrap][f % wrap].set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("step", fontsize=9)
    if together:
        handles = [plt.Line2D([], [], color=palette[v], linewidth=2) for v in variants]
        fig.legend(
            handles,
            variants,
            loc="upper center",
            ncol=min(5, len(variants)),
            frameon=False,
            bbox_to_anchor=(0.5, 1.0),
            fontsize=9,
        )
    else:
        fig.legend(
            [plt.Line2D([], [], color=_BASELINE_COLOUR, linewidth=2.2)],
            [f"{baseline} (in every panel)"],
            loc="upper center",
            frameon=False,
            bbox_to_anchor=(0.5, 1.0),
            fontsize=9,
        )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.45 / fig.get_figheight()))
    return fig


def finals(runs: pd.DataFrame, metrics: tuple[str, ...], order: list[str]) -> plt.Figure:
    """Each final metric per variant, one point per seed, so the spread between seeds shows.
    Without grid axes the points are coloured by verdict; with axes, every axis point (network x
    lr) gets its own colour and its own sub-row, so axis points are never drawn on top of each other."""
    metrics = tuple(m for m in metrics if m in runs)
    facets = [c for c in runs.columns if c.startswith("axis.")]
    data = runs.copy()
    if facets:
        combos = data[facets].drop_duplicates().sort_values(facets)
        labels = [", ".join(f"{c[len('axis.') :]}={row[c]}" for c in facets) for row in combos.to_dict("records")]
        data["axis point"] = [
            ", ".join(f"{c[len('axis.') :]}={row[c]}" for c in facets) for row in data.to_dict("records")
        ]
        hue, hue_order = "axis point", labels
        palette = dict(zip(labels, sns.color_palette("tab10" if len(labels) <= 10 else "tab20", len(labels))))
    else:
        hue, hue_order, palette = "verdict", list(VERDICT_COLOURS), VERDICT_COLOURS
    sub_rows = len(hue_order) if facets else 1
    fig, axes = plt.subplots(
        1,
        len(metrics),
        squeeze=False,
        figsize=(4.2 * len(metrics) + 1.5, len(order) * (0.35 + 0.12 * sub_rows) + 1.4),
        dpi=DPI,
    )
    for ax in axes[0]:
        for i in range(1, len(order), 2):  # a light band on every other variant, to follow a row
            ax.axhspan(i - 0.5, i + 0.5, color="0.94", zorder=0)
    for ax, metric in zip(axes[0], metrics):
        with _same_jitter():  # seaborn jitters with numpy's global generator
            sns.stripplot(
                data,
                x=metric,
                y="variant",
                order=order,
                hue=hue,
                hue_order=hue_order,
                palette=palette,
                dodge=bool(facets),
                jitter=0.08 if facets else 0.15,
                size=4.5,
                ax=ax,
                legend=(ax is axes[0][-1]),
            )
        _apply_scale(ax, data[metric], axis="x")
        ax.set_ylabel("" if ax is not axes[0][0] else "variant")
        if ax is not axes[0][0]:
            ax.set_yticklabels([])
        ax.tick_params(labelsize=8)
    if axes[0][-1].get_legend():
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.02, 1), frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def tradeoff(runs: pd.DataFrame, x: str, y: str, order: list[str], lines: dict[str, float] | None = None) -> plt.Figure:
    """One final metric against another, one small dot per run and a large cross at each variant's
    median, so a variant that buys one metric with the other shows where it moved. `lines` marks
    thresholds (the symptom's) as dashed lines on whichever axis carries that metric."""
    present = set(runs["variant"])
    variants = [v for v in order if v in present]
    palette = dict(zip(variants, sns.color_palette("tab10", len(variants))))
    fig, ax = plt.subplots(figsize=(7.5, 5.5), dpi=DPI)
    sns.scatterplot(
        runs, x=x, y=y, hue="variant", hue_order=variants, palette=palette, alpha=0.45, s=25, legend=False, ax=ax
    )
    medians = runs.groupby("variant")[[x, y]].median().reindex(variants)
    for variant, row in medians.iterrows():
        ax.scatter(
            row[x],
            row[y],
            marker="X",
            s=140,
            color=palette[variant],
            edgecolor="black",
            linewidth=0.6,
            label=variant,
            zorder=3,
        )
    for metric, value in (lines or {}).items():
        if metric == x:
            ax.axvline(value, color="grey", linestyle="--", linewidth=1)
        elif metric == y:
            ax.axhline(value, color="grey", linestyle="--", linewidth=1)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False, fontsize=8, title="median")
    fig.tight_layout()
    return fig


# Pictures: a small picture is magnified to about this many pixels tall (at most _MAX_ZOOM times),
# a large one is shown at its own size; a row is at most _MAX_ROW_IN inches wide.
_PICTURE_PX, _MAX_ZOOM, _MAX_ROW_IN = 160, 32, 15.0


def pictures(paths: dict[str, dict[str, str]], names: tuple[str, ...], order: list[str]) -> plt.Figure:
    """The case's pictures, one row per variant, one column per picture name. A picture that is the
    same for every variant (the input, the truth) is shown once, above. Small pictures are
    magnified (nearest neighbour, so pixels stay pixels) to ~_PICTURE_PX pixels tall, a row shrunk
    to _MAX_ROW_IN inches; pictures so wide that a row would shrink below half are stacked instead."""
    rows = [v for v in order if v in paths]
    if not rows:
        raise ValueError("no run of the chosen seed and axis point has pictures")
    images = {(v, n): mpimg.imread(paths[v][n]) for v in rows for n in names if n in paths[v]}
    shared = [
        n
        for n in names
        if len(rows) > 1
        and all((v, n) in images for v in rows)
        and all(np.array_equal(images[rows[0], n], images[v, n]) for v in rows[1:])
    ]
    own = [n for n in names if n not in shared]

    def size(name: str) -> tuple[float, float]:  # (height, width) in inches at the chosen zoom
        shapes = [im.shape for (_, n), im in images.items() if n == name]
        h, w = max(s[0] for s in shapes), max(s[1] for s in shapes)
        zoom = min(_MAX_ZOOM, max(1.0, _PICTURE_PX / h))
        return h * zoom / DPI, w * zoom / DPI

    # each panel: (label on the left, picture name, variant or None for a shared picture)
    stack = sum(size(n)[1] for n in own) > 2 * _MAX_ROW_IN  # shrunk below half: stack instead
    panel_rows = [[(f"{n}\n(every variant)", n, None)] for n in shared]
    if stack:
        panel_rows += [[(f"{v}\n{n}", n, v)] for v in rows for n in own]
    elif own:
        panel_rows += [[(v if j == 0 else "", n, v) for j, n in enumerate(own)] for v in rows]
    n_cols = max(len(r) for r in panel_rows)
    widths = [max(size(r[j][1])[1] for r in panel_rows if j < len(r)) for j in range(n_cols)]
    heights = [max(size(p[1])[0] for p in r) for r in panel_rows]
    shrink = min(1.0, _MAX_ROW_IN / sum(widths))
    fig, axes = plt.subplots(
        len(panel_rows),
        n_cols,
        squeeze=False,
        figsize=(sum(widths) * shrink + 2.0, sum(h * shrink + 0.3 for h in heights) + 0.3),
        gridspec_kw={"width_ratios": widths, "height_ratios": heights},
        dpi=DPI,
    )
    for i, row in enumerate(panel_rows):
        for j in range(n_cols):
            ax = axes[i][j]
            ax.set_xticks([]), ax.set_yticks([])
            if j >= len(row):
                ax.set_visible(False)
                continue
            label, name, variant = row[j]
            key = (rows[0] if variant is None else variant, name)
            if key in images:
                ax.imshow(images[key], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:  # a run that diverged before its pictures were drawn
                ax.text(0.5, 0.5, "no picture\n(diverged)", ha="center", va="center", fontsize=8)
            if label:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
            if variant is None or stack or i == len(shared):
                ax.set_title("" if variant is None or stack else name, fontsize=9)
    fig.tight_layout()
    return fig


def verdict_heatmap(cells: pd.DataFrame) -> plt.Figure:
    """The suite at a glance: one panel per case, a row per variant, a column per axis point; each
    cell coloured from green (every seed cured) to red (none cured), orange where most seeds are
    unlearned, grey where most diverged, and labelled k/n seeds with the symptom (+Nu unlearned, +Nd
    diverged, if any). `cells`: case, variant, point, not_cured, symptom, unlearned, diverged, seeds."""
    cases = list(dict.fromkeys(cells["case"]))
    heights = [cells.loc[cells["case"] == c, "variant"].nunique() for c in cases]
    widths = [cells.loc[cells["case"] == c, "point"].nunique() for c in cases]
    fig, axes = plt.subplots(
        len(cases),
        1,
        squeeze=False,
        figsize=(min(16, 3.2 + 1.15 * max(widths)), 0.32 * sum(heights) + 0.9 * len(cases) + 0.6),
        gridspec_kw={"height_ratios": heights},
        dpi=DPI,
    )
    cmap = sns.diverging_palette(145, 10, s=70, l=55, as_cmap=True)  # green (cured) to red (not cured)
    for ax, case in zip(axes[:, 0], cases):
        part = cells[cells["case"] == case]
        variants = list(dict.fromkeys(part["variant"]))
        points = list(dict.fromkeys(part["point"]))
        share, seeds, symptom, unlearned, diverged = (
            part.pivot(index="variant", columns="point", values=column).reindex(index=variants, columns=points)
            for column in ("not_cured", "seeds", "symptom", "unlearned", "diverged")
        )
        labels = [
            [
                (
                    ""
                    if pd.isna(seeds.iloc[i, j])
                    else f"{int(symptom.iloc[i, j])}/{int(seeds.iloc[i, j])}"
                    + (f" +{int(unlearned.iloc[i, j])}u" if unlearned.iloc[i, j] else "")
                    + (f" +{int(diverged.iloc[i, j])}d" if diverged.iloc[i, j] else "")
                )
                for j in range(len(points))
            ]
            for i in range(len(variants))
        ]
        sns.heatmap(
            share.astype(float),
            ax=ax,
            cmap=cmap,
            vmin=0,
            vmax=1,
            annot=np.array(labels),
            fmt="",
            cbar=False,
            linewidths=0.5,
            linecolor="white",
            annot_kws={"fontsize": 8},
        )
        for i in range(len(variants)):  # mostly unlearned: orange; mostly diverged: grey
            for j in range(len(points)):
                for verdict, count in (("unlearned", unlearned), ("diverged", diverged)):
                    if not pd.isna(seeds.iloc[i, j]) and count.iloc[i, j] >= seeds.iloc[i, j] / 2:
                        ax.add_patch(plt.Rectangle((j, i), 1, 1, color=VERDICT_COLOURS[verdict], zorder=2))
        ax.set_title(case, fontsize=10, loc="left")
        ax.set_xlabel(""), ax.set_ylabel("")
        ax.tick_params(labelsize=8, length=0)
        ax.xaxis.tick_top()
        ax.set_xticklabels(ax.get_xticklabels(), rotation=0)
    fig.tight_layout()
    return fig


def png(fig: plt.Figure) -> bytes:
    """The figure as PNG bytes, closed afterwards so a notebook never shows it twice."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def tool_heatmaps(table: pd.DataFrame, rates: dict[str, str]):
    """Tools x cases, one panel per rate (column -> title: scoring.RATES); each cell reads k/n (a
    blank cell: no runs of that kind). The detectors page draws it from `failbench detect`'s scores."""
    tools_ = list(dict.fromkeys(table["tool"]))
    cases = list(dict.fromkeys(table["case"]))
    # one panel under another, ~0.9 inch a case: side by side, eleven cases' "89/89" labels overlap
    fig, axes = plt.subplots(
        len(rates),
        1,
        squeeze=False,
        figsize=(3.5 + 0.9 * len(cases), len(rates) * (0.45 * len(tools_) + 1.6)),
    )
    for ax, (column, title) in zip(axes[:, 0], rates.items()):
        cell = {(r["tool"], r["case"]): r[column] for r in table.to_dict("records")}
        values = pd.DataFrame(
            [[cell[(t, c)].value if (t, c) in cell else math.nan for c in cases] for t in tools_],
            index=tools_,
            columns=cases,
        )
        labels = pd.DataFrame(
            [
                [f"{cell[(t, c)].k}/{cell[(t, c)].n}" if (t, c) in cell and cell[(t, c)].n else "" for c in cases]
                for t in tools_
            ],
            index=tools_,
            columns=cases,
        )
        sns.heatmap(values, vmin=0, vmax=1, cmap="viridis", annot=labels, fmt="", cbar=False, ax=ax)
        ax.set_title(title, loc="left", fontsize=11)
        ax.set_xlabel(""), ax.set_ylabel("")
        ax.tick_params(length=0)
        ax.xaxis.tick_top()  # the case names above each panel, next to its title
        ax.tick_params(axis="x", rotation=20, labelbottom=False, labeltop=True)
    fig.tight_layout()
    return fig
