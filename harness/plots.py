"""The report's figures, with seaborn. Each takes tidy data from harness.analysis and returns a
matplotlib Figure, so a notebook cell is one call and the figures can be tested without Jupyter."""
from __future__ import annotations

import io

import matplotlib.image as mpimg
import matplotlib.ticker as ticker
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

# A metric whose values span more than this many orders of magnitude is drawn on a symlog axis,
# so -5e4 and -0.3 are both readable.
_DECADES_FOR_SYMLOG = 3


def _scale_if_wide(ax, values: pd.Series, axis: str = "y") -> None:
    """Log scale for positive values spanning many decades; symlog when some are negative, with a
    tick every two decades past 6 so the labels do not overlap."""
    finite = values[np.isfinite(values)]
    magnitudes = finite.abs()[finite != 0]
    if not len(magnitudes) or np.log10(magnitudes.max() / magnitudes.min()) <= _DECADES_FOR_SYMLOG:
        return
    setter = ax.set_yscale if axis == "y" else ax.set_xscale
    if (finite > 0).all():
        setter("log")
        return
    linthresh = float(max(magnitudes.min(), 1e-3))
    setter("symlog", linthresh=linthresh)
    decades = np.log10(magnitudes.max() / linthresh)
    locator = ticker.SymmetricalLogLocator(base=100 if decades > 6 else 10, linthresh=linthresh)
    (ax.yaxis if axis == "y" else ax.xaxis).set_major_locator(locator)


def curves(history: pd.DataFrame, metrics: tuple[str, ...], hue_order: list[str]) -> plt.Figure:
    """Each metric against step per variant: the median over seeds, with a band from the 25th to
    the 75th percentile (the spread between seeds). With grid axes, one column per combination of
    their values (network x lr, say), so seeds of different axis points are never pooled. A metric
    logged only at the end is left to `finals`: as a curve it would be a lone point."""
    facets = [c for c in history.columns if c.startswith("axis.")]
    stepped = tuple(m for m in metrics if history.loc[history["metric"] == m, "step"].nunique() > 2)
    metrics = stepped or metrics
    combos = history[facets].drop_duplicates().sort_values(facets).to_dict("records") if facets else [None]
    # without an axis, metrics wrap into rows of 3 panels; with many columns, the panels narrow
    n_cols = len(combos) if facets else min(3, len(metrics))
    n_rows = len(metrics) if facets else -(-len(metrics) // n_cols)
    width = 5.0 if n_cols <= 3 else max(3.2, 20 / n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(width * n_cols, 3.2 * n_rows), squeeze=False)
    panels = [(m, c) for m in metrics for c in combos]
    for ax, (metric, combo) in zip(axes.flat, panels):
        data = history[history["metric"] == metric]
        if combo is not None:
            for column, value in combo.items():
                data = data[data[column] == value]
            ax.set_title(", ".join(f"{column[len('axis.'):]} = {value}" for column, value in combo.items()),
                         fontsize=10)
        sns.lineplot(data, x="step", y="value", hue="variant", hue_order=hue_order,
                     estimator="median", errorbar=("pi", 50), ax=ax, legend=ax is axes.flat[0])
        _scale_if_wide(ax, data["value"])
        ax.set_ylabel(metric)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    if axes.flat[0].get_legend():
        legend = axes.flat[0].get_legend()
        handles, labels = legend.legend_handles, [t.get_text() for t in legend.get_texts()]
        legend.remove()
        fig.legend(handles, labels, loc="upper center", ncol=min(5, len(labels)), frameon=False,
                   bbox_to_anchor=(0.5, 1.0))
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight() * (1 + len(hue_order) // 5)))
    return fig


def finals(runs: pd.DataFrame, metrics: tuple[str, ...], order: list[str]) -> plt.Figure:
    """Each final metric per variant, one point per seed, so the spread between seeds shows."""
    metrics = tuple(m for m in metrics if m in runs)
    facet = [c for c in runs.columns if c.startswith("axis.")][:1]
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 0.45 * len(order) + 1.6),
                             squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        sns.stripplot(runs, x=metric, y="variant", order=order, hue=facet[0] if facet else "verdict",
                      dodge=False, jitter=0.15, size=5, ax=ax, legend=(ax is axes[0][-1]),
                      hue_order=None if facet else ["symptom", "healthy", "diverged"],
                      palette=None if facet else {"symptom": "tab:red", "healthy": "tab:green",
                                                  "diverged": "tab:gray"})
        _scale_if_wide(ax, runs[metric], axis="x")
        ax.set_ylabel("" if ax is not axes[0][0] else "variant")
    if axes[0][-1].get_legend():
        sns.move_legend(axes[0][-1], "upper left", bbox_to_anchor=(1.02, 1), frameon=False)
    fig.tight_layout()
    return fig


def tradeoff(runs: pd.DataFrame, x: str, y: str, order: list[str],
             lines: dict[str, float] | None = None) -> plt.Figure:
    """One final metric against another, one small dot per run and a large cross at each variant's
    median, so a variant that buys one metric with the other shows where it moved. `lines` marks
    thresholds (the symptom's) as dashed lines on whichever axis carries that metric."""
    variants = [v for v in order if v in set(runs["variant"])]
    palette = dict(zip(variants, sns.color_palette("tab10", len(variants))))
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    sns.scatterplot(runs, x=x, y=y, hue="variant", hue_order=variants, palette=palette, alpha=0.45,
                    s=25, legend=False, ax=ax)
    medians = runs.groupby("variant")[[x, y]].median().reindex(variants)
    for variant, row in medians.iterrows():
        ax.scatter(row[x], row[y], marker="X", s=140, color=palette[variant], edgecolor="black",
                   linewidth=0.6, label=variant, zorder=3)
    for metric, value in (lines or {}).items():
        if metric == x:
            ax.axvline(value, color="grey", linestyle="--", linewidth=1)
        elif metric == y:
            ax.axhline(value, color="grey", linestyle="--", linewidth=1)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1), frameon=False, fontsize=8, title="median")
    fig.tight_layout()
    return fig


def pictures(paths: dict[str, dict[str, str]], names: tuple[str, ...], order: list[str]) -> plt.Figure:
    """The case's pictures, one row per variant, one column per picture name; each column as wide as
    its pictures' aspect ratio asks (a strip of patches is wide), the whole at most ~15 in wide."""
    rows = [v for v in order if v in paths]
    if not rows:
        raise ValueError("no run of the chosen seed and axis point has pictures")
    images = {(v, n): mpimg.imread(paths[v][n]) for v in rows for n in names if n in paths[v]}
    aspects = [max([im.shape[1] / im.shape[0] for (_, n), im in images.items() if n == name], default=1.0)
               for name in names]
    panel_height = min(2.2, 15 / sum(aspects))  # inches
    fig, axes = plt.subplots(len(rows), len(names), squeeze=False,
                             figsize=(panel_height * sum(aspects) + 1.5, (panel_height + 0.25) * len(rows)),
                             gridspec_kw={"width_ratios": aspects})
    for i, variant in enumerate(rows):
        for j, name in enumerate(names):
            ax = axes[i][j]
            ax.set_xticks([]), ax.set_yticks([])
            if (variant, name) in images:
                ax.imshow(images[variant, name], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            else:  # a run that diverged before its pictures were drawn
                ax.text(0.5, 0.5, "no picture\n(diverged)", ha="center", va="center", fontsize=8)
            if i == 0:
                ax.set_title(name, fontsize=9)
            if j == 0:
                ax.set_ylabel(variant, rotation=0, ha="right", va="center", fontsize=9)
    fig.tight_layout()
    return fig


def png(fig: plt.Figure) -> bytes:
    """The figure as PNG bytes, closed afterwards so a notebook never shows it twice."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()
