"""Measured tables in the READMEs, rendered from the committed snapshots, never typed by hand.

A table lives between two markers; the opening one says what to render:

    <!-- failbench table case=relu_blowup profile=quick metrics=filter_min,accuracy -->
    | variant | seeds | symptom (95% CI) | ... |
    <!-- end failbench table -->

Keys: `case` and `profile` (required: the snapshot is reports/reference/<profile>.json); `metrics`,
the final metrics whose medians are shown (default: the case's key metrics); `verdicts`, the verdict
columns (default: every verdict); `variants`, the rows (default: every variant); `where`, axis
values that select the rows (`where=network:conv,lr:0.5`); `snapshot`, another file under
reports/reference for the same profile (`snapshot=heldout/long`: the runs on seeds nobody tuned on,
written by `failbench snapshot --out`); `kind=claims`, the case's claims on the profile with their
evidence pooled over every snapshot of it, instead of its verdicts. `failbench table --readmes` rewrites every
block from the snapshots; a test fails when a README's block differs from what its snapshot renders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from failbench.contract import VERDICTS

ROOT = Path(__file__).resolve().parent.parent
BLOCK = re.compile(
    r"(?P<open><!-- failbench table (?P<spec>[^>]*?) -->\n)(?P<body>.*?)(?P<close><!-- end failbench table -->)", re.S
)
KEYS = ("case", "profile", "metrics", "verdicts", "variants", "where", "snapshot", "kind")
# What a block shows: the per-variant verdicts of one snapshot, or the case's claims on the profile
# with their evidence pooled over every snapshot of it (harness/evidence.py).
KINDS = ("verdicts", "claims")


class TableSpecError(ValueError):
    """A marker that cannot be rendered; the message names the file and the marker."""


@dataclass(frozen=True)
class TableSpec:
    case: str
    profile: str
    metrics: tuple[str, ...] | None = None
    verdicts: tuple[str, ...] = VERDICTS
    variants: tuple[str, ...] | None = None
    where: tuple[tuple[str, str], ...] = ()
    snapshot: str | None = None  # a file under reports/reference, without .json; default: the profile's
    kind: str = "verdicts"

    @classmethod
    def parse(cls, text: str) -> TableSpec:
        fields: dict[str, str] = {}
        for token in text.split():
            key, sep, value = token.partition("=")
            if not sep or key not in KEYS:
                raise TableSpecError(f"bad table marker token {token!r}; keys: {', '.join(KEYS)}")
            fields[key] = value
        if "case" not in fields or "profile" not in fields:
            raise TableSpecError(f"a table marker needs case= and profile=, got {text!r}")

        def listed(key: str) -> tuple[str, ...] | None:
            return tuple(fields[key].split(",")) if key in fields else None

        verdicts = listed("verdicts") or VERDICTS
        unknown = set(verdicts) - set(VERDICTS)
        if unknown:
            raise TableSpecError(f"unknown verdict(s) {sorted(unknown)} in {text!r}; choose from {VERDICTS}")
        where = tuple(tuple(pair.split(":", 1)) for pair in fields["where"].split(",")) if "where" in fields else ()
        snapshot = fields.get("snapshot")
        kind = fields.get("kind", "verdicts")
        if kind not in KINDS:
            raise TableSpecError(f"unknown kind {kind!r} in {text!r}; choose from {KINDS}")
        return cls(
            fields["case"], fields["profile"], listed("metrics"), verdicts, listed("variants"), where, snapshot, kind
        )


def render(spec: TableSpec, root: Path = ROOT) -> str:
    """The Markdown table the spec names, from reports/reference/<profile>.json."""
    from failbench.analysis import summary_table, to_markdown
    from failbench.discovery import CaseError, load_case
    from failbench.snapshot import REFERENCE_DIR, SnapshotError, default_path, read_snapshot

    path = REFERENCE_DIR / f"{spec.snapshot}.json" if spec.snapshot else default_path(spec.profile)
    if spec.kind == "claims":
        return _claims(spec)
    try:
        case = load_case(spec.case)
        runs = read_snapshot(path, [case], spec.profile)
    except (CaseError, SnapshotError) as exc:
        raise TableSpecError(str(exc)) from None
    missing = [m for m in spec.metrics or () if m not in runs]
    if missing:
        raise TableSpecError(f"the {spec.profile} snapshot of {spec.case} holds no metric {', '.join(missing)}")
    if spec.variants:
        runs = runs[runs["variant"].isin(spec.variants)]
    for axis, value in spec.where:
        column = f"axis.{axis}"
        if column not in runs:
            raise TableSpecError(f"{spec.case} has no axis {axis!r}")
        runs = runs[runs[column].astype(str) == value]
    if runs.empty:
        raise TableSpecError(f"no runs of {spec.case} in the {spec.profile} snapshot match {spec}")
    order = {v: i for i, v in enumerate(case.variants)}
    # the case's own variant order, as its reports use; axis points by value (0.1 before 0.15)
    axes = [c for c in runs.columns if c.startswith("axis.")]
    runs = runs.sort_values(["variant", *axes, "seed"], key=lambda c: c.map(order) if c.name == "variant" else c)
    table = summary_table(case, runs, spec.metrics or case.key_metrics)
    fixed = [v for v in (spec.variants or ()) if v in set(table["variant"])]
    if fixed:  # the rows in the order the marker names them
        table = table.set_index("variant").loc[fixed].reset_index()
    dropped = [v for v in VERDICTS if v not in spec.verdicts]
    return to_markdown(table.drop(columns=dropped)) + "\n"


def _claims(spec: TableSpec) -> str:
    from failbench.discovery import CaseError, load_case
    from failbench.evidence import claims_markdown, profile_evidence

    try:
        case = load_case(spec.case)
    except CaseError as exc:
        raise TableSpecError(str(exc)) from None
    items = profile_evidence([case], spec.profile)
    if not items:
        raise TableSpecError(f"{spec.case} makes no claim on the {spec.profile} profile")
    return claims_markdown(items) + "\n"


def rendered(text: str, source: str = "README") -> str:
    """`text` with every table block rendered anew."""

    def block(match: re.Match) -> str:
        try:
            spec = TableSpec.parse(match["spec"])
            return match["open"] + render(spec) + match["close"]
        except TableSpecError as exc:
            raise TableSpecError(f"{source}: {exc}") from None

    return BLOCK.sub(block, text)


def readmes(root: Path = ROOT) -> list[Path]:
    """Every Markdown file of the project that holds a table block."""
    skip = {".venv", ".git", "node_modules"}
    found = [p for p in root.rglob("*.md") if not skip & set(p.relative_to(root).parts)]
    return sorted(p for p in found if BLOCK.search(p.read_text()))


def stale(root: Path = ROOT) -> list[Path]:
    """The READMEs whose blocks differ from what their snapshots render."""
    return [p for p in readmes(root) if rendered(p.read_text(), str(p.relative_to(root))) != p.read_text()]


def update(root: Path = ROOT) -> list[Path]:
    """Rewrites every stale README in place; returns the ones changed."""
    changed = []
    for path in readmes(root):
        text = path.read_text()
        new = rendered(text, str(path.relative_to(root)))
        if new != text:
            path.write_text(new)
            changed.append(path)
    return changed
