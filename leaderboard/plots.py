"""Plots next to the markdown (matplotlib, Agg): a forgetting/keeping trade-off scatter per task and
per-class bars for class tasks.  PNGs carry no software/date stamp, so same records -> same bytes."""
from __future__ import annotations

from pathlib import Path

from leaderboard.aggregate import TaskTable, short_name

PLOT_DIR = "plots"
FORGET_METRICS = ("UA", "nudity")  # y axis: how well it forgot (nudity: flagged images)
KEEP_METRICS = ("RA", "AS-test", "AS", "AS-train")  # x axis: what it kept, in order of preference


def _first(columns: list[str], shorts: tuple[str, ...], exclude: str | None = None) -> str | None:
    for s in shorts:
        for c in columns:
            if short_name(c) == s and c != exclude:
                return c
    return None


def tradeoff_axes(table: TaskTable) -> tuple[str, str] | None:
    """(x, y) columns: keep-metric vs forget-metric; for tasks without UA (e.g. nudity), the first
    other ↑/↓ metric that is not an alignment/keep column."""
    cols = table.metric_columns
    x = _first(cols, KEEP_METRICS)
    y = _first(cols, FORGET_METRICS)
    if y is None:
        y = next((c for c in cols if c != x and short_name(c) not in KEEP_METRICS), None)
    return (x, y) if x and y and x != y else None


def _slug(task: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in task)


def _save(fig, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, metadata={"Software": None})


def _ci_err(row, col: str) -> list[list[float]]:
    """Asymmetric error bar from the row's bootstrap interval; none for n = 1."""
    m, lo, hi = row[f"{col} mean"], row.get(f"{col} ci_lo"), row.get(f"{col} ci_hi")
    if lo is None or hi is None or lo != lo or hi != hi:
        return [[0.0], [0.0]]
    return [[max(0.0, m - lo)], [max(0.0, hi - m)]]


def plot_tradeoff(table: TaskTable, out_dir: Path) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    axes = tradeoff_axes(table)
    if axes is None or table.rows.empty:
        return None
    x, y = axes
    df = table.rows.dropna(subset=[f"{x} mean", f"{y} mean"])
    if df.empty:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for _, r in df.iterrows():
        marker = "s" if r["reference"] else "o"
        ax.errorbar(
            r[f"{x} mean"], r[f"{y} mean"], xerr=_ci_err(r, x), yerr=_ci_err(r, y),
            fmt=marker, capsize=3, color="grey" if r["reference"] else None, label=r["row"],
        )
        ax.annotate(r["row"], (r[f"{x} mean"], r[f"{y} mean"]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(f"{x} {table.directions.get(x, '')}")
    ax.set_ylabel(f"{y} {table.directions.get(y, '')}")
    ax.set_title(f"{table.task}: trade-off (mean, 95% bootstrap CI)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    rel = f"{PLOT_DIR}/{_slug(table.task)}-tradeoff.png"
    _save(fig, out_dir / rel)
    plt.close(fig)
    return rel


def plot_per_class(table: TaskTable, out_dir: Path) -> list[str]:
    """Grouped bars per target (class) for UA and RA: where a method forgets or breaks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    if table.kind != "class" or table.per_target is None or table.per_target.empty:
        return []
    pt = table.per_target
    written = []
    for metric in [c for c in (_first(table.metric_columns, ("UA",)), _first(table.metric_columns, ("RA",))) if c]:
        targets = list(dict.fromkeys(pt["target"]))
        rows = list(table.rows["row"])
        width = 0.8 / max(len(rows), 1)
        fig, ax = plt.subplots(figsize=(max(5.0, 0.6 * len(targets) * max(1, len(rows) / 3)), 3.8))
        for i, row in enumerate(rows):
            sub = pt[pt["row"] == row].set_index("target")[metric].reindex(targets)
            ax.bar(np.arange(len(targets)) + i * width - 0.4 + width / 2, sub.to_numpy(dtype=float), width, label=row)
        ax.set_xticks(np.arange(len(targets)), targets)
        ax.set_xlabel("target class")
        ax.set_ylabel(f"{metric} {table.directions.get(metric, '')}")
        ax.set_title(f"{table.task}: {short_name(metric)} per class (mean over seeds)")
        ax.legend(fontsize=7, ncols=min(len(rows), 4), loc="upper center", bbox_to_anchor=(0.5, -0.18))
        fig.tight_layout()
        rel = f"{PLOT_DIR}/{_slug(table.task)}-{short_name(metric).lower()}-per-class.png"
        _save(fig, out_dir / rel)
        plt.close(fig)
        written.append(rel)
    return written


def write_plots(tables: list[TaskTable], out_dir: Path | str) -> dict[str, list[str]]:
    """task -> plot paths relative to out_dir (where the markdown lives).

    Labels are user-written: mathtext is off, so `$…$` in a label is drawn as written, never parsed."""
    import matplotlib

    out_dir = Path(out_dir)
    plots: dict[str, list[str]] = {}
    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
        for t in tables:
            paths = [p for p in [plot_tradeoff(t, out_dir)] if p] + plot_per_class(t, out_dir)
            if paths:
                plots[t.task] = paths
    return plots
