"""Published figures as separate, cited rows: shown only where the protocol matches.

The data live in `reported.csv` (task, label, metric, value, requires, source).  A figure is
shown on its task only, in the columns whose short name is the metric (or `metric-…`, e.g.
AS-train/AS-test) and whose full name contains `requires` (the backbone of the protocol).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from leaderboard.aggregate import short_name

REPORTED_FILE = Path(__file__).with_name("reported.csv")


@dataclass(frozen=True)
class Reported:
    task: str
    label: str
    metric: str
    value: float
    requires: str
    source: str

    def matches(self, column: str) -> bool:
        s = short_name(column)
        return (s == self.metric or s.startswith(self.metric + "-")) and self.requires in column


def load_reported(path: Path | str = REPORTED_FILE) -> list[Reported]:
    lines = [l for l in Path(path).read_text().splitlines() if l.strip() and not l.startswith("#")]
    return [
        Reported(r["task"], r["label"], r["metric"], float(r["value"]), r["requires"], r["source"])
        for r in csv.DictReader(lines)
    ]


def reported_rows(task: str, columns: list[str], reported: list[Reported]) -> list[tuple[str, str, dict[str, float]]]:
    """[(label, source, {column: value})] for this task's matching columns, in file order."""
    rows: dict[tuple[str, str], dict[str, float]] = {}
    for r in reported:
        if r.task != task:
            continue
        cells = {c: r.value for c in columns if r.matches(c)}
        if cells:
            rows.setdefault((r.label, r.source), {}).update(cells)
    return [(label, source, cells) for (label, source), cells in rows.items()]
