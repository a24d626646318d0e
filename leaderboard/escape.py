"""Escaping user-written text (labels, method names, error messages, options) for each output.

Labels and errors are written by whoever ran or submitted a method, so the leaderboard treats them
as data: in markdown they cannot open HTML, split a table cell or start a link; in plots they are
never parsed as mathtext (`$…$` raised and took the whole results directory down); in CSV a cell
cannot start a spreadsheet formula.
"""
from __future__ import annotations

import re

_MD_SPECIAL = re.compile(r"([\\`|])")  # escape, code span, cell separator
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)?|[@-Z\\-_])")  # colour codes, OSC titles
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # the rest of C0/C1, after whitespace became spaces
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def md(text) -> str:
    """Text safe inside a markdown table cell or list item: one line, no HTML, no link, no cell break."""
    s = one_line(text)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = _MD_SPECIAL.sub(r"\\\1", s)
    return s.replace("](", "]\\(")  # `[text](url)`: no inline link or image; emphasis is left alone


def one_line(text) -> str:
    """Plain text on one line: terminal escapes (a Ray traceback's colours) and control characters
    dropped, every run of whitespace (newlines would end a table row or list item) one space."""
    return _CONTROL.sub("", " ".join(_ANSI.sub("", str(text)).split()))


def md_line(text, limit: int = 400) -> str:
    """`md`, cut to `limit` characters (a failure's cause, not its traceback)."""
    s = one_line(text)
    return md(s if len(s) <= limit else s[: limit - 1] + "…")


def csv_cell(value):
    """A string cell that a spreadsheet would run as a formula gets a leading apostrophe (OWASP)."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value
