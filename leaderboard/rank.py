"""Ranks: per column by direction, then the mean over a task's metric columns (reference rows excluded)."""
from __future__ import annotations

from leaderboard.aggregate import COST_COLUMNS, TaskTable


def rank_table(table: TaskTable) -> dict[str, tuple[int, int]]:
    """row name -> (rank by mean per-column rank, number of ranked rows); metrics only, not cost."""
    df = table.rows[~table.rows["reference"]]
    if df.empty:
        return {}
    cols = [c for c in table.columns if c not in COST_COLUMNS]
    ranks = None
    for c in cols:
        r = df[f"{c} mean"].rank(ascending=table.directions.get(c, "↑") == "↓", method="min")
        ranks = r if ranks is None else ranks + r
    mean_rank = (ranks / max(len(cols), 1)).rank(method="min")
    return {df.loc[i, "row"]: (int(mean_rank[i]), len(df)) for i in df.index}
