"""glassware.markdown: the one Markdown table builder."""

from __future__ import annotations

from glassware.markdown import table


def test_table_has_a_header_a_separator_and_one_line_per_row():
    assert table(["a", "b"], [[1, "x"], [2.5, ""]]) == "| a | b |\n|---|---|\n| 1 | x |\n| 2.5 |  |"
    assert table(["a"], []) == "| a |\n|---|"
