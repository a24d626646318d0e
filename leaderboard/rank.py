"""Ranks: on a task by the ranking scalar (leaderboard/score.py; reference rows excluded), with rank
bands decided by paired differences (leaderboard/paired.py, leaderboard/uncertainty.py); across tasks,
the mean win rate."""
from __future__ import annotations

import pandas as pd

from leaderboard.aggregate import TaskTable
from leaderboard.paired import interval
from leaderboard.uncertainty import bands_from_pairs


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


def separated_pairs(table: TaskTable) -> set[tuple[str, str]]:
    """(a, b) for every pair of ranked rows where a is above b: the 95% paired bootstrap interval of
    S_a − S_b, over the jobs both have, lies wholly above 0 (rows sharing fewer than two jobs: undecided)."""
    df = _scored(table)
    if df.empty or table.bootstrap is None:
        return set()
    names = list(df["row"])
    out = set()
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            sa, sb = table.paired_scores.get(a, {}), table.paired_scores.get(b, {})
            diff = table.bootstrap.difference(sa, sb)
            if diff is None:
                continue
            common = [k for k in sa if k in sb]
            pa, pb = table.point_scores[a], table.point_scores[b]
            point = sum(pa[k] - pb[k] for k in common) / len(common)
            iv = interval(diff, point)
            if iv and iv[0] > 0:
                out.add((a, b))
            elif iv and iv[1] < 0:
                out.add((b, a))
    return out


def score_bands(table: TaskTable, pairs: set[tuple[str, str]] | None = None) -> dict[str, tuple[int, int]]:
    """row name -> (best, worst) rank that the paired differences allow (see uncertainty.bands_from_pairs);
    `pairs`: the table's separated_pairs, when the caller has them already (each costs B-sample differences)."""
    df = _scored(table)
    if df.empty:
        return {}
    return bands_from_pairs(dict(zip(df["row"], df["score mean"])), separated_pairs(table) if pairs is None else pairs)


def win_rates(scores: dict[str, float]) -> dict[str, float]:
    """row -> the share of the other rows it beats on one task, a tie counting half a win:
    (#{lower} + ½ #{tied}) / (n − 1). Rows all tied (e.g. every row clipped to score 0) get ½ each,
    not 1 (a tie is not a win); without ties it is (n − rank) / (n − 1). Scores compare at 12 decimals,
    as the point rank does."""
    if len(scores) < 2:
        return {}
    rounded = {k: round(float(v), 12) for k, v in scores.items()}
    n = len(rounded)
    return {k: (sum(o < v for o in rounded.values()) + 0.5 * (sum(o == v for o in rounded.values()) - 1)) / (n - 1)
            for k, v in rounded.items()}


def overall_ranks(tables: list[TaskTable]) -> pd.DataFrame:
    """One row per method row name: its rank on each task and its mean win rate over tasks.

    Win rate on a task: `win_rates` (HELM's aggregate, ties half): unlike a mean rank it does not
    reward running only on tasks with few competitors; a task with a single ranked row says nothing
    and is left out.  Sorted by win rate, then by more tasks, then by name (stable output)."""
    per_task = {t.task: rank_table(t) for t in tables}
    rates_by_task = {}
    for t in tables:
        df = _scored(t)
        rates_by_task[t.task] = win_rates(dict(zip(df["row"], df["score mean"]))) if not df.empty else {}
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
                    rates.append(rates_by_task[task][name])
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
