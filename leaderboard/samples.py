"""Per task, one sample grid: a row per method, forget images beside remain images.

Every row shows the same target and the same evaluation prompts/classes and seeds (the task fixes
them), taken from each row's record (`samples`, written by bench/runner/sample_strip.py): the target most
rows have (natural order on ties) and the row's lowest job seed.  A row without samples for that
target is left out and named in the figure's note.  Each row's label quotes that job's own values:
the score's forget column (UA: did the images lose the concept?) and, on text-to-image tasks, AS-safe
(do the forget prompts' images still match their safe twins?).
"""
from __future__ import annotations

import base64
import io
from collections import Counter
from pathlib import Path

import numpy as np

from bench.core.record import RunRecord, parse_record
from leaderboard.aggregate import TaskTable
from leaderboard.plots import PLOT_DIR, _save, _slug
from leaderboard.score import short_name

LABEL_METRICS = ("AS-safe",)  # short names a row label quotes beside the score's forget column, when recorded


def _natural(target: str):
    return (0, int(target), "") if str(target).isdigit() else (1, 0, str(target))


def _decode(png_b64: str) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(base64.b64decode(png_b64))).convert("RGB"))


def pick_jobs(table: TaskTable, records: list[RunRecord]) -> tuple[str | None, list[tuple[str, RunRecord | None]]]:
    """(target, [(row name, the record whose samples it shows, or None)]) in table order."""
    rows = list(zip(table.rows["row"], table.rows["label"], table.rows["setting_hash"]))
    have: dict[tuple[str, str], dict[str, list[RunRecord]]] = {}
    for r in map(parse_record, records):
        s = r.samples
        if r.task == table.task and r.ok and s and s.get("png"):
            have.setdefault((r.label, r.setting_hash), {}).setdefault(r.target, []).append(r)
    counts = Counter(t for key in have for t in have[key])
    if not counts:
        return None, []
    target = min(counts, key=lambda t: (-counts[t], _natural(t)))
    out = []
    for row, label, h in rows:
        recs = have.get((label, h), {}).get(target)
        out.append((row, min(recs, key=lambda r: (r.seed, r.job_id)) if recs else None))
    return target, out


def pick_samples(table: TaskTable, records: list[RunRecord]) -> tuple[str | None, list[tuple[str, dict | None]]]:
    """(target, [(row name, samples dict or None)]) in table order."""
    target, picked = pick_jobs(table, records)
    return target, [(row, r.samples if r else None) for row, r in picked]


def label_columns(table: TaskTable) -> list[str]:
    """The metric columns a row label quotes: the score's forget column, then LABEL_METRICS that the task has."""
    cols = [table.score.forget] if table.score else []
    return cols + [c for c in table.metric_columns if short_name(c) in LABEL_METRICS and c not in cols]


def row_label(row: str, record: RunRecord, columns: list[str]) -> str:
    """The row name and, under it, the shown job's values one per line (a narrow grid has little room on the
    left); columns the record lacks are skipped."""
    values = [(short_name(c), record.metrics.get(c)) for c in columns]
    return "\n".join([row] + [f"{name} {v:.3f}" for name, v in values if isinstance(v, (int, float)) and np.isfinite(v)])


def _short(text: str, n: int = 22) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def plot_sample_grid(table: TaskTable, records: list[RunRecord], out_dir: Path) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    target, picked = pick_jobs(table, records)
    columns = label_columns(table)
    shown = [(row_label(row, r, columns), r.samples) for row, r in picked if r is not None]
    if not shown:
        return None
    missing = [row for row, r in picked if r is None]
    strips = [_decode(s["png"]) for _, s in shown]
    first = shown[0][1]
    n_img = len(first["keys"])
    aspect = strips[0].shape[1] / strips[0].shape[0]
    width = min(16.0, max(4.5, 1.6 + 0.75 * n_img))
    row_h = (width - 1.6) / aspect
    fig, axes = plt.subplots(len(shown), 1, figsize=(width, 0.9 + row_h * len(shown) + 0.7), squeeze=False)
    for ax, (row, s), img in zip(axes[:, 0], shown, strips):
        ax.imshow(img, interpolation="nearest")
        ax.set_yticks([])
        ax.set_ylabel(row, rotation=0, ha="right", va="center", fontsize=8)
        w = img.shape[1] / max(len(s["keys"]), 1)
        split = s["per_set"][0] if s.get("per_set") else None
        if split and split < len(s["keys"]):
            ax.axvline(split * w - 0.5, color="red", lw=1.5)
        ax.set_xticks([])
    ax = axes[-1, 0]
    w = strips[-1].shape[1] / max(n_img, 1)
    ax.set_xticks((np.arange(n_img) + 0.5) * w - 0.5, [_short(k) for k in first["keys"]], rotation=35, ha="right", fontsize=6)
    sets = first.get("sets", [])
    title = f"{table.task}, target {target}\n" + (f"left of the red line: {sets[0]}; right: {sets[1]}" if len(sets) > 1 else ", ".join(sets))
    title += " (fixed eval seeds)" + ("\nunder each name: the values of the job shown" if columns else "")
    axes[0, 0].set_title(title, fontsize=8)
    if missing:
        fig.text(0.01, 0.01, f"no samples for target {target}: {', '.join(missing)}", fontsize=6)
    fig.tight_layout()
    rel = f"{PLOT_DIR}/{_slug(table.task)}-samples.png"
    _save(fig, out_dir / rel)
    plt.close(fig)
    return rel


def write_sample_grids(tables: list[TaskTable], records: list[RunRecord], out_dir: Path | str) -> dict[str, list[str]]:
    """task -> [grid path relative to out_dir]; mathtext off (labels and prompts are user text)."""
    import matplotlib

    out_dir = Path(out_dir)
    out = {}
    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
        for t in tables:
            if t.rows.empty:
                continue
            rel = plot_sample_grid(t, records, out_dir)
            if rel:
                out[t.task] = [rel]
    return out
