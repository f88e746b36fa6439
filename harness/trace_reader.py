"""The reader of a training trace (the writer is trace.py): one tidy trace, as the diagnosis rules
read it, per-step scalars and per-layer statistics in model order, and the two helpers every rule
uses to find when a condition first holds."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pandas as pd


class View:
    """Read access to one tidy trace: per-step scalars and per-layer statistics in model order.

    Built once per trace with numpy (a cube stat x step x layer, and one sorted array per scalar);
    a rule's table is a DataFrame over a slice of it. The last logged value of a (step, statistic,
    layer) wins; a scalar's NaN is never logged (RunContext.log keeps only finite values)."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame
        step = frame["step"].to_numpy()
        layer = frame["layer"].to_numpy(dtype=object)
        stat = frame["stat"].to_numpy(dtype=object)
        value = frame["value"].to_numpy(dtype=float)
        self._all_steps, self._all_values = step, value
        self.steps = [int(x) for x in np.unique(step)]
        per_layer = layer != ""
        codes_layer, self.layers = pd.factorize(layer[per_layer])  # model order: first appearance
        self.layers = [str(x) for x in self.layers]
        firsts = np.flatnonzero(per_layer)[np.unique(codes_layer, return_index=True)[1]]
        self.kind = dict(zip(self.layers, frame["kind"].to_numpy()[firsts]))
        self.activation = dict(zip(self.layers, frame["activation"].to_numpy()[firsts]))
        codes_stat, stats = pd.factorize(stat[per_layer])
        step_values, codes_step = np.unique(step[per_layer], return_inverse=True)
        shape = (len(stats), len(step_values), len(self.layers))
        self._cube = np.full(shape, np.nan)
        self._present = np.zeros(shape, dtype=bool)
        last = _last_of(np.ravel_multi_index((codes_stat, codes_step, codes_layer), shape) if shape[0] else codes_stat)
        where = (codes_stat[last], codes_step[last], codes_layer[last])
        self._cube[where] = value[per_layer][last]
        self._present[where] = True
        self._stat_index = {str(name): i for i, name in enumerate(stats)}
        self._step_values = step_values
        self._layer_index = {name: i for i, name in enumerate(self.layers)}
        scalar_stat, scalar_step, scalar_value = stat[~per_layer], step[~per_layer], value[~per_layer]
        codes, names = pd.factorize(scalar_stat)
        self._scalars: dict[str, pd.Series] = {}
        if len(codes):
            keep = _last_of(codes.astype(np.int64) * (int(scalar_step.max()) + 1) + scalar_step)  # sorted by stat, step
            for i, name in enumerate(names):
                mine = keep[codes[keep] == i]
                index = pd.Index(scalar_step[mine], name="step")
                self._scalars[str(name)] = pd.Series(scalar_value[mine], index=index, name="value")
        self._memo: dict = {}

    def memo(self, key, compute: Callable[[], Any]) -> Any:
        """`compute()` once per view: a result several rules (or a tool's several rules) read."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def scalar(self, stat: str) -> pd.Series:
        found = self._scalars.get(stat)
        return found if found is not None else pd.Series(dtype=float, name="value").rename_axis("step")

    def stat(self, stat: str, layers: Iterable[str] | None = None) -> pd.DataFrame:
        """step x layer; a layer without the statistic is left out, a step where no layer has it too."""
        chosen = tuple(self.layers if layers is None else layers)
        return self.memo(("stat", stat, chosen), lambda: self._select(stat, chosen))

    def _select(self, stat: str, chosen: tuple[str, ...]) -> pd.DataFrame:
        i = self._stat_index.get(stat)
        if i is None:
            return pd.DataFrame(index=pd.Index([], name="step"))
        present = self._present[i]
        rows = present.any(axis=1)
        carried = present.any(axis=0)
        columns = [c for c in chosen if c in self._layer_index and carried[self._layer_index[c]]]
        picked = [self._layer_index[c] for c in columns]
        return pd.DataFrame(
            self._cube[i][rows][:, picked],
            index=pd.Index(self._step_values[rows], name="step"),
            columns=pd.Index(columns, dtype=object, name="layer"),
        )

    def with_activation(self, *names: str) -> list[str]:
        return [n for n in self.layers if self.activation[n] in names]

    def weighted(self, kind: str | None = None) -> list[str]:
        return [n for n in self.layers if self.kind[n] in ((kind,) if kind else ("conv", "linear"))]

    def diverged_at(self) -> int | None:
        nonfinite = self.scalar("nonfinite")
        return int(nonfinite.index[0]) if len(nonfinite) else None

    def nonfinite_at(self) -> int | None:
        """The first step with a non-finite value anywhere in the trace, or a recorded divergence."""
        return self.memo("nonfinite_at", self._nonfinite_at)

    def ends_nonfinite_at(self) -> int | None:
        """A divergence the run ends in: the step its loss stopped being finite (a recorded
        divergence), or, where a value of the last traced step is not finite, the first step of the
        non-finite stretch that reaches it. A non-finite value the run recovers from (a step a
        mixed-precision scaler skipped on an inf gradient) is not one."""
        return self.memo("ends_nonfinite_at", self._ends_nonfinite_at)

    def _ends_nonfinite_at(self) -> int | None:
        recorded = self.diverged_at()
        if recorded is not None:
            return recorded
        if not len(self._all_steps):
            return None
        bad = np.unique(self._all_steps[~np.isfinite(self._all_values)])
        out = self.scalar("out_nonfinite")
        bad = np.union1d(bad, out.index[out.to_numpy() > 0].to_numpy())
        steps = np.unique(self._all_steps)
        if not len(bad) or steps[-1] not in bad:
            return None
        start = len(steps) - 1  # back through the trailing traced steps that are all non-finite
        while start > 0 and steps[start - 1] in bad:
            start -= 1
        return int(steps[start])

    def _nonfinite_at(self) -> int | None:
        steps = self._all_steps[~np.isfinite(self._all_values)].tolist()
        steps += self.scalar("nonfinite").index.tolist()
        out = self.scalar("out_nonfinite")
        steps += out.index[out.to_numpy() > 0].tolist()
        return int(min(steps)) if steps else None


def _last_of(keys: np.ndarray) -> np.ndarray:
    """Indices of the last occurrence of each distinct key, in ascending key order."""
    reverse = keys[::-1]
    _, at = np.unique(reverse, return_index=True)
    return len(keys) - 1 - at


def first(mask: pd.Series) -> int | None:
    """The first index where a boolean series is True (NaN counts as False)."""
    values = mask.to_numpy()
    if values.dtype != bool:
        values = mask.fillna(False).to_numpy(dtype=bool)
    hits = np.flatnonzero(values)
    return int(mask.index[hits[0]]) if len(hits) else None


def any_layer(table: pd.DataFrame, condition) -> pd.Series:
    """Per step: does the condition hold on any layer? (NaN cells count as not holding: a comparison
    with NaN is False.) The condition is applied to the table's numpy values."""
    if not table.shape[1]:
        return pd.Series(dtype=bool)
    with np.errstate(invalid="ignore"):
        hits = np.asarray(condition(table.to_numpy(dtype=float)), dtype=bool)
    return pd.Series(hits.any(axis=1), index=table.index)
