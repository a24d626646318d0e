"""Per-instance values: what a metric's number averaged (or summed), one value per evaluation instance.

Like lm-evaluation-harness's logged samples, but compact: a metric column returns a `PerInstance`
(values, the evaluation set they come from, and the ids that identify each instance across methods:
the prompt index or class id and the evaluation seed), the job stores it in the record's `instances`,
and the leaderboard resamples them for its paired, hierarchical intervals (leaderboard/paired.py).
Every method is judged on the same ids (fixed evaluation prompts and noise), which is what makes the
comparison paired.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

REDUCTIONS = ("mean", "sum")
DIGITS = 7  # significant digits kept per instance value (a record stays small; the column's own value is exact)


def instance_ids(keys: Sequence[Any], seeds: Sequence[int], class_keys: bool = False) -> list[str]:
    """`<prompt index or class id>@<evaluation seed>` per instance of an evaluation set."""
    if len(keys) != len(seeds):
        raise ValueError(f"an evaluation set needs one seed per key: {len(keys)} keys, {len(seeds)} seeds")
    return [f"{int(k) if class_keys else i}@{int(s)}" for i, (k, s) in enumerate(zip(keys, seeds))]


@dataclass(frozen=True)
class PerInstance:
    """One metric column's per-instance values; `value` is the column (their mean or sum)."""

    set: str  # the evaluation set ("forget", "remain_test", ...): columns on one set share its ids
    ids: tuple[str, ...]
    values: tuple[float, ...]
    reduce: str = "mean"

    def __post_init__(self) -> None:
        if self.reduce not in REDUCTIONS:
            raise ValueError(f"reduce must be one of {REDUCTIONS}, not {self.reduce!r}")
        if len(self.ids) != len(self.values) or not self.values:
            raise ValueError(f"set {self.set!r}: {len(self.ids)} ids for {len(self.values)} values (need as many, at least one)")

    @classmethod
    def of(cls, set_name: str, ids: Iterable[str], values: Iterable[float], reduce: str = "mean") -> "PerInstance":
        return cls(set_name, tuple(ids), tuple(float(v) for v in values), reduce)

    @property
    def value(self) -> float:
        total = math.fsum(self.values)
        return total if self.reduce == "sum" else total / len(self.values)


def split_results(results: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, PerInstance]]:
    """A metric's compute() output -> (column -> number, column -> PerInstance for those that have them)."""
    numbers, per = {}, {}
    for col, v in results.items():
        if isinstance(v, PerInstance):
            per[col] = v
            numbers[col] = v.value
        else:
            numbers[col] = float(v)
    return numbers, per


def to_record(per: Mapping[str, PerInstance]) -> dict:
    """The record's `instances`: ids once per set, values per column."""
    sets: dict[str, list[str]] = {}
    columns = {}
    for col, p in per.items():
        if p.set in sets and sets[p.set] != list(p.ids):
            raise ValueError(f"columns on evaluation set {p.set!r} disagree on its instance ids")
        sets[p.set] = list(p.ids)
        columns[col] = {"set": p.set, "reduce": p.reduce, "values": [float(f"{v:.{DIGITS}g}") for v in p.values]}
    return {"sets": sets, "columns": columns} if columns else {}


def from_record(obj: Any) -> dict[str, PerInstance]:
    """The record's `instances` back as column -> PerInstance; ValueError says what is malformed."""
    if not obj:
        return {}
    if not isinstance(obj, dict) or not isinstance(obj.get("sets"), dict) or not isinstance(obj.get("columns"), dict):
        raise ValueError("'instances' must be an object with 'sets' and 'columns'")
    out = {}
    for col, c in obj["columns"].items():
        if not isinstance(c, dict) or c.get("set") not in obj["sets"] or not isinstance(c.get("values"), list):
            raise ValueError(f"instances of column {col!r} name no known set or have no values")
        ids = obj["sets"][c["set"]]
        if not isinstance(ids, list):
            raise ValueError(f"instance ids of set {c['set']!r} are not a list")
        try:
            out[col] = PerInstance.of(c["set"], [str(i) for i in ids], c["values"], c.get("reduce", "mean"))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"instances of column {col!r}: {exc}") from exc
    return out
