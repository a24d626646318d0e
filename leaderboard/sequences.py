"""Sequential unlearning as a view: does an earlier erasure survive the later ones, and what is left of the model?

A sequence record (RunRecord.sequence, bench/runner/chains.py) is one step of a chain: the model erased the
order's targets up to this one, each step from the previous step's weights. Its records never enter the ranked
tables (leaderboard/aggregate.py leaves them out); here, per task and order, each row's chain step by step:

    UA@k          UA on step k's own target, just erased
    UA-earlier@k  UA on the targets erased before step k, asked again (metrics/sequence.py; mean over them)
    K@k           the keep ratio after step k, the score's K (leaderboard/score.py, the leaderboard's rule)
                  against Original's chain at the same step: the same keep sets, which leave the erased
                  targets out, so K reads only what the model was still asked to keep

Values are means over the chain's seeds (one seed in mini-full: no interval, and the table says n).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from bench.core.record import RunRecord, parse_record
from leaderboard.aggregate import REFERENCE_ROWS, _compact, short_name
from leaderboard.escape import md, md_line
from leaderboard.plots import PLOT_DIR, _save, _slug
from leaderboard.score import DEFAULT_RULE, keep, score_columns

EARLIER = "UA-earlier"


@dataclass
class SequenceTable:
    """One task's chains of one order: a row per (label, chain setting), a column block per step."""

    task: str
    order: tuple[str, ...]
    # row, label, method, reference, n (chains), then per step k (1-based): "UA@k", "UA-earlier@k" (k ≥ 2), "K@k"
    rows: pd.DataFrame
    forget: str  # the UA column read
    keep_text: str  # what K read (the score's columns)
    failed: list[dict] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return len(self.order)


def _chain_key(r: RunRecord) -> tuple:
    """What one chain's steps share, so that its rows never average different settings (the setting hash
    holds the step, so the hash alone cannot group them)."""
    return (r.label, r.method, _compact(r.hparams_resolved), _compact(r.budget), _compact(r.task_config),
            json.dumps(r.raw.get("given_checkpoints") or {}, sort_keys=True))


def _earlier_column(metrics: dict) -> str | None:
    return next((c for c in metrics if short_name(c) == EARLIER), None)


def _mean(values: list[float]) -> float:
    vals = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def sequence_tables(records: Iterable[RunRecord | dict], tasks: Iterable[str] | None = None, methods: Iterable[str] | None = None,
                    rule: str = DEFAULT_RULE) -> list[SequenceTable]:
    """Per (task, order), the chains' step-by-step UA, UA on the earlier targets and K (see the module doc)."""
    recs = [r for r in map(parse_record, records) if r.sequence]
    if tasks:
        recs = [r for r in recs if r.task in set(tasks)]
    originals = [r for r in recs if r.ok and r.method == "original"]  # before --methods: K needs Original
    if methods:
        recs = [r for r in recs if r.label in set(methods) or r.method in set(methods)]
    out = []
    for task, order in sorted({(r.task, r.sequence) for r in recs}):
        mine = [r for r in recs if r.task == task and r.sequence == order]
        ok = [r for r in mine if r.ok]
        failed = [{"label": r.label, "target": r.target, "seed": r.seed, "error": r.error} for r in mine if not r.ok]
        # the score's columns per step: a keep column's name may change with the step's keep set (FID's n)
        by_step = {k: score_columns(sorted({c for r in ok if r.sequence_step == k for c in r.metrics}), rule) for k in range(len(order))}
        known = [c for c in by_step.values() if c is not None]
        if not known:  # nothing finished (or nothing scoreable): the failures are still listed
            if failed:
                out.append(SequenceTable(task, order, pd.DataFrame(), "", "", failed))
            continue
        # Original's chain per (task options, step): the K reference (Original runs one seed; mean if several)
        reference: dict = {}
        for o in originals:
            if o.task == task and o.sequence == order:
                reference.setdefault((_compact(o.task_config), o.sequence_step), []).append(o.metrics)
        rows = []
        chains: dict = {}
        for r in ok:
            chains.setdefault(_chain_key(r), {}).setdefault(r.seed, {})[r.sequence_step] = r
        for key, by_seed in chains.items():
            label, method, *_ = key
            row = {"label": label, "method": method, "reference": method in REFERENCE_ROWS, "n": len(by_seed)}
            for k, cols in by_step.items():
                steps = [s[k] for s in by_seed.values() if k in s] if cols is not None else []
                row[f"UA@{k + 1}"] = _mean([s.metrics.get(cols.forget) for s in steps])
                if k:
                    row[f"{EARLIER}@{k + 1}"] = _mean([s.metrics.get(_earlier_column(s.metrics) or "", np.nan) for s in steps])
                ks = []
                for s in steps:
                    refs = reference.get((_compact(s.task_config), k))
                    if refs:
                        orig = {c: _mean([m.get(c) for m in refs]) for c in set().union(*refs)}
                        ks.append(keep(s.metrics, orig, cols))
                row[f"K@{k + 1}"] = _mean(ks)
            rows.append(row)
        df = pd.DataFrame(rows)
        if df.empty:
            out.append(SequenceTable(task, order, df, _text(known, "forget"), _text(known, "keep_text"), failed))
            continue
        multi = df.groupby("label")["label"].transform("size") > 1  # one label under several settings: numbered
        df["row"] = df["label"].where(~multi, df["label"] + " #" + (df.groupby("label").cumcount() + 1).astype(str))
        df["_order"] = df["method"].map({m: i for i, m in enumerate(REFERENCE_ROWS)}).fillna(len(REFERENCE_ROWS))
        df = df.sort_values(["_order", f"K@{len(order)}", "row"], ascending=[True, False, True]).drop(columns="_order")
        out.append(SequenceTable(task, order, df.reset_index(drop=True), _text(known, "forget"), _text(known, "keep_text"), failed))
    return out


def _text(cols: list, attr: str) -> str:
    """The steps' column names for the legend: one when every step reads the same, else each once, in step order."""
    return " / ".join(dict.fromkeys(getattr(c, attr) for c in cols))


def _cell(v) -> str:
    return "–" if v is None or not np.isfinite(v) else f"{v:.3f}"


def render_sequences(tables: list[SequenceTable], plots: dict[tuple[str, tuple[str, ...]], str] | None = None) -> str:
    """The markdown section: a table (and a plot) per task and order."""
    if not tables:
        return ""
    plots = plots or {}
    lines = ["## Sequential unlearning", "",
             "Each row erases the order's targets one after another, every step from the previous step's model "
             "(its jobs are kept out of the ranked tables above). UA@k: UA on step k's own target; UA-earlier@k: UA on "
             "the targets erased before step k, asked again with the same prompts or classes and seeds as when each was "
             "the target (mean over them; a drop means a later step brought an erased target back); K@k: the keep ratio "
             "of the score's rule after step k against Original's chain at the same step, on keep sets that leave every "
             "erased target out. n = chains (seeds); one chain gives no interval.", ""]
    for t in tables:
        lines += [f"### {md(t.task)}: {' → '.join(md(x) for x in t.order)}", ""]
        if t.rows.empty:
            lines.append("No finished steps.")
        else:
            n = t.steps
            cols = [f"UA@{k}" for k in range(1, n + 1)] + [f"{EARLIER}@{k}" for k in range(2, n + 1)] + [f"K@{k}" for k in range(1, n + 1)]
            header = ["method"] + [f"{c} ↑" for c in cols] + ["n"]
            lines += ["| " + " | ".join(header) + " |", "|---|" + "---:|" * (len(cols) + 1)]
            for _, r in t.rows.iterrows():
                name = f"*{md(r['row'])}* (ref)" if r["reference"] else md(r["row"])
                lines.append("| " + " | ".join([name] + [_cell(r.get(c)) for c in cols] + [str(int(r["n"]))]) + " |")
            lines += ["", f"Step k's target: {', '.join(f'{k} = {md(x)}' for k, x in enumerate(t.order, 1))}. "
                          f"UA reads `{md(t.forget)}`; K reads {t.keep_text}" + (" (by step)" if " / " in t.keep_text else "") + "."]
        if (t.task, t.order) in plots:
            lines += ["", f"![{md(t.task)}: sequence]({plots[(t.task, t.order)]})"]
        if t.failed:
            lines += ["", f"Failed steps ({len(t.failed)}):"]
            for f in sorted(t.failed, key=lambda f: (f["label"], f["seed"], t.order.index(f["target"]))):
                lines.append(f"- {md(f['label'])} step {t.order.index(f['target']) + 1} ({md(f['target'])}) seed {f['seed']}: {md_line(f['error'] or '')}")
        lines.append("")
    return "\n".join(lines)


def plot_sequence(table: SequenceTable, out_dir: Path) -> str | None:
    """Two small panels per task and order: UA on the earlier targets after each step, and K after each step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if table.rows.empty:
        return None
    n = table.steps
    fig, (left, right) = plt.subplots(1, 2, figsize=(8.0, 3.4))
    colours = plt.get_cmap("tab20").colors  # more rows than the default cycle's 10 colours
    references = {"original": {"color": "black", "linestyle": ":"}, "retrain": {"color": "grey", "linestyle": "--"}}
    for i, (_, r) in enumerate(table.rows.iterrows()):
        style = references.get(r["method"], {"color": "grey", "linestyle": "--"}) if r["reference"] else {"color": colours[i % len(colours)]}
        left.plot(range(2, n + 1), [r.get(f"{EARLIER}@{k}") for k in range(2, n + 1)], marker="o", label=r["row"], **style)
        right.plot(range(1, n + 1), [r.get(f"K@{k}") for k in range(1, n + 1)], marker="o", label=r["row"], **style)
    left.set_title("UA on the earlier targets ↑", fontsize=9)
    right.set_title("keep ratio K ↑", fontsize=9)
    for ax, first in ((left, 2), (right, 1)):
        ax.set_xticks(range(first, n + 1), [f"{k}: {table.order[k - 1]}" for k in range(first, n + 1)], fontsize=8)
        ax.set_xlabel("after step")
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
    right.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.02, 0.5))
    fig.suptitle(f"{table.task}: sequential unlearning ({' → '.join(table.order)})", fontsize=10)
    fig.tight_layout()
    rel = f"{PLOT_DIR}/{_slug(table.task)}-sequence-{_slug('-'.join(table.order))}.png"
    _save(fig, out_dir / rel)
    plt.close(fig)
    return rel


def write_sequence_plots(tables: list[SequenceTable], out_dir: Path | str) -> dict[tuple[str, tuple[str, ...]], str]:
    """(task, order) -> plot path relative to out_dir; labels drawn as written (mathtext off)."""
    import matplotlib

    out = {}
    with matplotlib.rc_context({"text.parse_math": False, "text.usetex": False}):
        for t in tables:
            path = plot_sequence(t, Path(out_dir))
            if path:
                out[(t.task, t.order)] = path
    return out
