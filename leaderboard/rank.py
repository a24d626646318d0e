"""Ranks: on a task by the ranking scalar (leaderboard/score.py; reference rows excluded), with rank
bands from its bootstrap intervals (leaderboard/uncertainty.py); across tasks, the mean win rate."""
from __future__ import annotations

import pandas as pd

from leaderboard.aggregate import TaskTable
from leaderboard.uncertainty import Interval, rank_bands


def _scored(table: TaskTable) -> pd.DataFrame:
    if table.rows.empty or "score mean" not in table.rows:
        return pd.DataFrame()
    df = table.rows[~table.rows["reference"]]
    return df[df["score mean"].notna()]


def rank_table(table: TaskTable) -> dict[str, tuple[int, int]]:
    """row name -> (rank by mean score, higher first, ties share the best rank; number of ranked rows).
    Rows without a score (no Original to normalise against) are not ranked."""
    df = _scored(table)
    if df.empty:
        return {}
    rank = df["score mean"].round(12).rank(ascending=False, method="min")
    return {df.loc[i, "row"]: (int(rank[i]), len(df)) for i in df.index}


def score_bands(table: TaskTable) -> dict[str, tuple[int, int]]:
    """row name -> (best, worst) rank allowed by the score's 95% intervals (see uncertainty.rank_bands)."""
    df = _scored(table)
    if df.empty:
        return {}
    means = dict(zip(df["row"], df["score mean"]))
    intervals = {
        r: None if lo != lo else Interval(lo, hi) for r, lo, hi in zip(df["row"], df["score ci_lo"], df["score ci_hi"])
    }
    return rank_bands(means, intervals)


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
