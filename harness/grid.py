"""Expand a case into grid points: variant x axes x seed, under one profile's budget.

A grid point is the unit of work: pure, seeded, idempotent. Its identity (what makes two runs the
same point) lives in harness/identity.py.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from failbench.contract import Case


@dataclass(frozen=True)
class GridPoint:
    case: str
    variant: str
    axes: tuple[tuple[str, Any], ...]  # sorted (name, value) pairs, hashable
    seed: int
    profile: str
    overrides: tuple[tuple[str, Any], ...] = ()  # `failbench run --set`, applied last

    def config(self, case: Case) -> Any:
        return case.config(self.variant, dict(self.axes), self.profile, dict(self.overrides))

    @property
    def axes_dict(self) -> dict[str, Any]:
        return dict(self.axes)

    def label(self) -> str:
        axes = ",".join(f"{k}={v}" for k, v in self.axes)
        return f"{self.case}/{self.variant}" + (f"[{axes}]" if axes else "") + f"/seed{self.seed}"


def flat_params(config: Any) -> dict[str, Any]:
    """The config as flat name -> value pairs (nested dataclasses joined with dots)."""
    flat: dict[str, Any] = {}
    for key, value in dataclasses.asdict(config).items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    return flat


def override_conflict(case: Case, profile: str, variants: Iterable[str] | None, key: str) -> str | None:
    """Why `--set key=...` may not run on this grid, or None: an axis (or an exploration) sets the
    key per point, and a fix sets it per variant, so an override would silently replace what the
    point's tags and the variant's name still claim (identity_filter's `lr` axis; relu_blowup's
    `low_lr`)."""
    spec = case.profiles[profile]
    if key in {**case.axes, **spec.axes, **spec.explores}:
        return f"--set {key}: {key} is an axis of {case.name} ({profile}); each grid point sets it"
    for variant in variants or spec.variants or case.variants:
        fix = case.fix(variant)
        if fix is not None and key in fix.change:
            return f"--set {key}: the fix {variant!r} of {case.name} sets {key}; run the baseline, or another variant"
    return None


def expand(
    case: Case,
    profile: str,
    variants: Iterable[str] | None = None,
    seeds: int | None = None,
    where: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    first_seed: int = 0,
) -> list[GridPoint]:
    """Every grid point of `case` on `profile`, variants in declared order, seeds
    first_seed..first_seed+n-1 (another range tests expectations on seeds nobody tuned on)."""
    spec = case.profiles[profile]
    chosen = list(variants) if variants else list(spec.variants or case.variants)
    n_seeds = spec.seeds if seeds is None else seeds
    values = {**case.axes, **spec.axes, **spec.explores}
    names = sorted(values)
    combos = itertools.product(*(values[n] for n in names))
    axis_points = [tuple(zip(names, combo)) for combo in combos]
    if where:
        axis_points = [a for a in axis_points if all(dict(a).get(k) == v for k, v in where.items())]
    fixed = tuple(sorted((overrides or {}).items()))

    def runs_at(variant: str, point: tuple[tuple[str, Any], ...]) -> bool:
        fix = case.fix(variant)
        return fix is None or all(dict(point)[k] in values for k, values in fix.axes.items())

    return [
        GridPoint(case.name, v, a, s, profile, fixed)
        for v in chosen
        for a in axis_points
        if runs_at(v, a)
        for s in range(first_seed, first_seed + n_seeds)
    ]
