"""How failbench writes what a person reads: a share with its interval, a number, a Markdown table.

One door for each, so `check`, `table`, `compare`, `detect`, the reports and the READMEs print the
same thing the same way: a share reads `9/10 (90% [60%-98%])`, its Wilson 95% interval
(harness/stats.py) in brackets; a number has 3 significant figures; a missing value is `-`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from failbench.stats import Share

MISSING = "-"


def share_text(s: Share) -> str:
    """`9/10 (90% [60%-98%])`; `-` for a share of no seeds."""
    if not s.n:
        return MISSING
    return f"{s.k}/{s.n} ({s.value:.0%} [{s.low:.0%}-{s.high:.0%}])"


def number(value: Any) -> str:
    """3 significant figures; `-` for None or NaN; other values as they print."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, Share):
        return share_text(value)
    return str(value)


def markdown_table(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    headers: Mapping[str, str] | None = None,
    cell: Callable[[str, Any], str] | None = None,
) -> str:
    """A GitHub table of `columns` from `rows` (dicts); `headers` renames a column's title, `cell`
    formats a value (default: `number`). A `|` inside a value is escaped so the row keeps its shape."""
    headers = headers or {}
    fmt = cell or (lambda _column, value: number(value))
    lines = ["| " + " | ".join(headers.get(c, c) for c in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(fmt(c, row.get(c)).replace("|", "\\|") for c in columns) + " |")
    return "\n".join(lines)


def median_text(median: float | None, missing: str = "-") -> str:
    """A median of the suite's runs in 3 significant figures; `missing` where no run had a finite
    value (None or NaN: slow convergence's statistic is read on a plateau, and no cured run sat on one)."""
    return missing if median is None or not math.isfinite(median) else f"{median:.3g}"
