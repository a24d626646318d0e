"""Task tables -> markdown (stable, diff-friendly order)."""
from __future__ import annotations

import math

from leaderboard.aggregate import TaskTable


def fmt(mean: float, std: float, n: int) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    digits = 3 if abs(mean) < 100 else 1
    s = f"{mean:.{digits}f}"
    if n > 1 and std is not None and not math.isnan(std):
        s += f" ± {std:.{digits}f}"
    return s


def best_rows(table: TaskTable, col: str) -> set[int]:
    """Indices of the best non-reference row(s) for a column, by its direction."""
    df = table.rows
    cand = df[~df["reference"]][f"{col} mean"].dropna()
    if cand.empty:
        return set()
    target = cand.max() if table.directions.get(col, "↑") == "↑" else cand.min()
    return set(cand.index[cand.round(6) == round(target, 6)])


def render_task(table: TaskTable) -> str:
    header = ["method"] + [f"{c} {table.directions.get(c, '')}".strip() for c in table.columns] + ["n"]
    lines = [f"## {table.task}", "", "| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    bests = {c: best_rows(table, c) for c in table.columns}
    for i, row in table.rows.iterrows():
        name = f"*{row['row']}* (ref)" if row["reference"] else row["row"]
        cells = [name]
        for c in table.columns:
            cell = fmt(row[f"{c} mean"], row[f"{c} std"], int(row["n"]))
            cells.append(f"**{cell}**" if i in bests[c] else cell)
        cells.append(f"{int(row['n'])} ({int(row['targets'])}×{int(row['seeds'])})")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("Mean ± std over targets × seeds; n = jobs (targets × seeds). ↑ higher is better, ↓ lower is better; best non-reference value in bold.")
    if table.failed:
        lines.append("")
        lines.append(f"Failed jobs ({len(table.failed)}):")
        for f in sorted(table.failed, key=lambda f: (f["label"], str(f["target"]), f["seed"])):
            lines.append(f"- {f['label']} target {f['target']} seed {f['seed']}: {f['error']}")
    return "\n".join(lines) + "\n"


def render_markdown(tables: list[TaskTable], title: str = "unlearn-bench leaderboard") -> str:
    parts = [f"# {title}", ""]
    if not tables:
        parts.append("No records found.")
    parts.extend(render_task(t) for t in tables)
    return "\n".join(parts)
