"""Ranks: per column by direction, then the mean over a task's metric columns (reference rows excluded);
across tasks, the mean win rate."""
from __future__ import annotations

import pandas as pd

from leaderboard.aggregate import TaskTable


def rank_table(table: TaskTable) -> dict[str, tuple[int, int]]:
    """row name -> (rank by mean per-column rank, number of ranked rows); metrics only, not cost."""
    if table.rows.empty:
        return {}
    df = table.rows[~table.rows["reference"]]
    cols = table.metric_columns
    if df.empty or not cols:
        return {}
    ranks = sum(
        df[f"{c} mean"].rank(ascending=table.directions.get(c, "↑") == "↓", method="min", na_option="bottom") for c in cols
    )
    mean_rank = (ranks / len(cols)).rank(method="min")
    return {df.loc[i, "row"]: (int(mean_rank[i]), len(df)) for i in df.index}


def overall_ranks(tables: list[TaskTable]) -> pd.DataFrame:
    """One row per method row name: its rank on each task and its mean win rate over tasks.

    Win rate on a task = the share of the other ranked rows it beats, (n - rank) / (n - 1)
    (HELM's aggregate): unlike a mean rank it does not reward running only on tasks with few
    competitors; a task with a single ranked row says nothing and is left out.  Sorted by win
    rate, then by more tasks, then by name (stable output)."""
    per_task = {t.task: rank_table(t) for t in tables}
    names = sorted({name for ranks in per_task.values() for name in ranks})
    rows = []
    for name in names:
        row = {"method": name}
        rates = []
        for task, ranks in per_task.items():
            if name in ranks:
                r, n = ranks[name]
                row[task] = f"{r}/{n}"
                if n > 1:
                    rates.append((n - r) / (n - 1))
            else:
                row[task] = "–"
        row["win rate"] = sum(rates) / len(rates) if rates else float("nan")
        row["tasks"] = len(rates)
        rows.append(row)
    df = pd.DataFrame(rows, columns=["method", *per_task, "win rate", "tasks"])
    if df.empty:
        return df
    df = df.sort_values(["win rate", "tasks", "method"], ascending=[False, False, True], na_position="last").reset_index(drop=True)
    df.insert(0, "rank", df["win rate"].rank(method="min", ascending=False).astype("Int64"))
    return df
