"""Markdown for the reports and docs the commands write."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], align: str = "") -> str:
    """A Markdown table: a header row, its separator, then one line per row (cells through `str`).
    `align`: one letter per column, "l" or "r" (numbers read best right-aligned); left where not given."""
    marks = {"l": "---", "r": "---:"}
    lines = [_row(headers), "|" + "".join(marks[a] + "|" for a in align.ljust(len(headers), "l"))]
    return "\n".join(lines + [_row(row) for row in rows])


def _row(cells: Sequence[object]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"
