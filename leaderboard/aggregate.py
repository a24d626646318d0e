"""Records -> per-task tables of mean ± std over targets and seeds.

Rows are keyed by (task, label, setting_hash): records from different protocol settings,
hyper-parameters or budgets are never averaged together.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

import pandas as pd

REFERENCE_ROWS = ("original", "retrain")
COST_COLUMNS = {"time (s)": ("unlearn_seconds", "↓"), "peak mem (MB)": ("peak_mem_mb", "↓")}


def records_frame(records: Iterable[dict]) -> pd.DataFrame:
    rows = []
    for r in records:
        cost = r.get("cost") or {}
        gpu = cost.get("peak_gpu_mem_mb")
        rows.append(
            {
                "task": r["task"],
                "label": r["label"],
                "method": r["method"],
                "setting_hash": r["setting_hash"],
                "target": str(r["target"]),
                "seed": r["seed"],
                "status": r["status"],
                "error": r.get("error"),
                "unlearn_seconds": cost.get("unlearn_seconds"),
                "peak_mem_mb": gpu if gpu is not None else cost.get("peak_host_mem_mb"),
                **{f"metric::{k}": v for k, v in (r.get("metrics") or {}).items()},
            }
        )
    return pd.DataFrame(rows)


@dataclass
class TaskTable:
    task: str
    rows: pd.DataFrame  # one row per (label, setting_hash); columns "<col> mean", "<col> std"
    columns: list[str]  # metric + cost columns in display order
    directions: dict[str, str]
    failed: list[dict] = field(default_factory=list)


def directions_from(records: Iterable[dict]) -> dict[str, str]:
    out: dict[str, str] = {}
    for r in records:
        out.update(r.get("directions") or {})
    return out


def aggregate(records: list[dict], tasks: Iterable[str] | None = None, methods: Iterable[str] | None = None) -> list[TaskTable]:
    df = records_frame(records)
    if df.empty:
        return []
    if tasks:
        df = df[df.task.isin(list(tasks))]
    if methods:
        df = df[df.label.isin(list(methods)) | df.method.isin(list(methods))]
    directions = directions_from(records)
    tables = []
    for task, tdf in sorted(df.groupby("task"), key=lambda kv: kv[0]):
        ok = tdf[tdf.status == "ok"]
        metric_cols = sorted(c for c in ok.columns if c.startswith("metric::") and ok[c].notna().any())
        names = [c.removeprefix("metric::") for c in metric_cols]
        value_cols = metric_cols + [src for src, _ in COST_COLUMNS.values()]
        display = names + list(COST_COLUMNS)
        dirs = {n: directions.get(n, "↑") for n in names} | {k: d for k, (_, d) in COST_COLUMNS.items()}
        grouped = ok.groupby(["label", "setting_hash"], sort=True)
        agg = grouped[value_cols].agg(["mean", "std"])
        agg.columns = [f"{_display(c)} {stat}" for c, stat in agg.columns]
        agg["n"] = grouped.size()
        agg["targets"] = grouped["target"].nunique()
        agg["seeds"] = grouped["seed"].nunique()
        agg["method"] = grouped["method"].first()
        agg = agg.reset_index()
        # a label seen under several settings keeps them apart, named by their hash
        multi = agg.groupby("label")["setting_hash"].transform("nunique") > 1
        agg["row"] = agg["label"].where(~multi, agg["label"] + " [" + agg["setting_hash"].str[:6] + "]")
        agg["reference"] = agg["label"].isin(REFERENCE_ROWS)
        order = {name: i for i, name in enumerate(REFERENCE_ROWS)}
        agg["_order"] = agg["label"].map(lambda l: order.get(l, len(order)))
        agg = agg.sort_values(["_order", "row"]).drop(columns="_order").reset_index(drop=True)
        failed = tdf[tdf.status != "ok"][["label", "target", "seed", "error"]].to_dict("records")
        tables.append(TaskTable(task, agg, display, dirs, failed))
    return tables


def _display(col: str) -> str:
    if col.startswith("metric::"):
        return col.removeprefix("metric::")
    for name, (src, _) in COST_COLUMNS.items():
        if src == col:
            return name
    return col
