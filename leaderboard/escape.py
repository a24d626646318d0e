"""Escaping user-written text (labels, method names, error messages, options) for each output.

Labels and errors are written by whoever ran or submitted a method, so the leaderboard treats them
as data: in markdown they cannot open HTML, split a table cell or start a link; in plots they are
never parsed as mathtext (`$…$` raised and took the whole results directory down); in CSV a cell
cannot start a spreadsheet formula.
"""
from __future__ import annotations

import re

_MD_SPECIAL = re.compile(r"([\\`|])")  # escape, code span, cell separator
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def md(text) -> str:
    """Text safe inside a markdown table cell or list item: one line, no HTML, no link, no cell break."""
    s = " ".join(str(text).split())  # newlines would end the table row / list item
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _MD_SPECIAL.sub(r"\\\1", s)
    return s.replace("](", "]\\(")  # `[text](url)`: no inline link or image; emphasis is left alone


def csv_cell(value):
    """A string cell that a spreadsheet would run as a formula gets a leading apostrophe (OWASP)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value
