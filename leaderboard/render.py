"""Task tables -> markdown (stable, diff-friendly: same records -> same bytes; no "now" anywhere)."""
from __future__ import annotations

import math
from collections import Counter

import pandas as pd

from leaderboard.aggregate import TaskTable
from leaderboard.escape import md, md_line
from leaderboard.paired import RESAMPLES
from leaderboard.plots import _slug
from leaderboard.rank import overall_ranks, score_bands, separated_pairs
from leaderboard.reported import Reported, reported_rows
from leaderboard.score import FLOOR_SUFFIX, RULE_TEXT, short_name
from leaderboard.sequences import render_sequences
from leaderboard.uncertainty import band_text

LEGEND = (
    "- Cells: the mean over targets × seeds with its 95% paired, hierarchical bootstrap interval [lo, hi] ({resamples} resamples "
    "shared by every row of the task: jobs drawn with replacement, and inside each job its evaluation "
    "instances — prompts or class samples with their fixed noise — drawn the same way for every method and "
    "for Original; the score is recomputed per resample; seeded from the task and its jobs); a value without "
    "an interval comes from one job (n=1, no interval); cost columns show mean ± std.",
    "- n = jobs (targets × seeds); setting = the first characters of the setting hash (protocol version, task options, "
    "method, hyper-parameters, budget, a user-given checkpoint's digest): rows with different settings are never averaged together.",
    "- ↑ higher is better, ↓ lower is better; best non-reference value in bold; *reference rows* (Original, Retrain) are not ranked.",
    "- time = unlearning wall time (evaluation excluded); peak mem = accelerator memory when the job had one, else host RSS.",
    "- Metric headers are short names; the list under each table gives each column's full name (its judge or "
    "classifier, n, its floor) and the part of the score it feeds (F, K_a, K_i, K_s).",
)
SOURCES = (
    "After the setting hash, where a row's hyper-parameters come from: *tuned* = selected by `unlearn-bench tune` "
    "on held-out targets with the same budget for every method (the Settings list gives it); *reference* = the "
    "papers' settings at the suite's shared step budget; *given* = set by hand in the suite; *external* = a model "
    "unlearned elsewhere, evaluated by `unlearn-bench evaluate` (its setting hash includes its weights' digest).\n\n"
    "*tuned (stale: …)* = the tuning no longer matches what it was selected under; the reasons: *rule* (the point "
    "was selected under another rule than this leaderboard ranks by), *protocol* (under another PROTOCOL_VERSION than "
    "the job ran), *method code* (the method's code hash differs from the one the job ran; *method code unknown*: the "
    "suite recorded none), *provenance unknown* (the "
    "suite recorded none: tuned before provenance was kept). A stale row is still measured as shown; only its claim to "
    "be tuned is in doubt."
)
SOURCE_TAGS = {"reference": "ref", "given": "given", "external": "external"}
RANKING = (
    "{rule}\n\n**Rank** = the band of ranks the paired comparisons allow: row A is above row B "
    "only when the 95% paired bootstrap interval of the score difference S_A − S_B (over the jobs both have, "
    "resampled as under *Reading the task tables*) excludes 0; a row's band runs from 1 + the rows above it to N − the rows below it, so "
    "rows no comparison separates share a band (\"1–3\"), and a row with one job is compared with nobody."
)
OVERALL = (
    "Per task: rank by mean score (point rank; the task tables show its band); overall: the mean win rate, the share of "
    "other ranked rows a method beats on a task (a tie counts half), averaged over the tasks where it had competitors (`tasks`)."
)
LEAD = (
    "Methods ranked on each task by one score (forget gain F against keep ratio K, both relative to *Original*; rule "
    "`{rule}`), with rank bands from paired bootstrap comparisons; overall, by mean win rate. Definitions follow the tables."
)


def fmt(mean: float, std: float, n: int) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    digits = 3 if abs(mean) < 100 else 1
    s = f"{mean:.{digits}f}"
    if n > 1 and std is not None and not math.isnan(std):
        s += f" ± {std:.{digits}f}"
    return s


def fmt_ci(mean: float, lo: float, hi: float) -> str:
    """`0.940 [0.910, 0.970]`; no interval (n = 1) -> the bare value."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "–"
    digits = 3 if abs(mean) < 100 else 1
    s = f"{mean:.{digits}f}"
    if lo is not None and hi is not None and not (math.isnan(lo) or math.isnan(hi)):
        s += f" [{lo:.{digits}f}, {hi:.{digits}f}]"
    return s


def score_cell(row) -> str:
    if pd.isna(row["score mean"]):
        return "–"
    if pd.isna(row["score ci_lo"]):
        return f"{row['score mean']:.3f} (n={int(row['n'])}, no interval)"
    return fmt_ci(row["score mean"], row["score ci_lo"], row["score ci_hi"])


def best_rows(table: TaskTable, col: str) -> set[int]:
    """Indices of the best non-reference row(s) for a column, by its direction."""
    df = table.rows
    cand = df[~df["reference"]][f"{col} mean"].dropna()
    if cand.empty:
        return set()
    target = cand.max() if table.directions.get(col, "↑") == "↑" else cand.min()
    return set(cand.index[cand.round(6) == round(target, 6)])


def value_cell(table: TaskTable, row, column: str) -> str:
    """A metric as mean [95% CI]; a cost column as mean ± std."""
    if column in table.metric_columns:
        return fmt_ci(row[f"{column} mean"], row[f"{column} ci_lo"], row[f"{column} ci_hi"])
    return fmt(row[f"{column} mean"], row[f"{column} std"], int(row["n"]))


def verdict_text(ranked: list[str], pairs: set[tuple[str, str]]) -> str:
    """Which pairs of ranked rows the paired comparisons separate, per row above others ("a > b, c"), in rank order."""
    n = len(ranked) * (len(ranked) - 1) // 2
    above = [(a, [b for b in ranked if (a, b) in pairs]) for a in ranked]
    told = "; ".join(f"{md(a)} > {', '.join(md(b) for b in below)}" for a, below in above if below)
    return f"Paired verdicts: {len(pairs)} of {n} pairs separated" + (f": {told}." if told else ".")


def column_headers(table: TaskTable) -> dict[str, str]:
    """Column -> its header: a metric's short name (score.py `short_name`) and arrow, so that headers stay a
    word wide whatever the judge's name; short names shared in one table get `#1`, `#2` in column order.
    Cost columns keep their full, already short names."""
    metrics = table.metric_columns
    shorts = {c: short_name(c) or c for c in metrics}
    counts = Counter(shorts.values())
    seen: Counter = Counter()
    out = {}
    for c in table.columns:
        name = shorts.get(c, c)
        if counts[name] > 1:
            seen[name] += 1
            name = f"{name} #{seen[name]}"
        out[c] = f"{md(name)} {table.directions.get(c, '')}".strip()
    return out


def score_roles(table: TaskTable) -> dict[str, str]:
    """Column -> the part of the score it feeds, for the column list."""
    cols = table.score
    if cols is None:
        return {}
    roles = {cols.forget: "the score's F", cols.keep: "the score's K_a" if cols.integrity or cols.safe else "the score's K"}
    if cols.integrity:
        roles[cols.integrity] = "the score's K_i"
    if cols.safe:
        roles[cols.safe] = "the score's K_s"
    return roles


def floor_text(table: TaskTable, column: str) -> str:
    """'; floor: <name>, Original's mean v' for the floor columns that belong to `column` (same short name + suffix)."""
    own = f"{short_name(column)}{FLOOR_SUFFIX}"
    names = sorted({f for f in table.floors if short_name(f) == own}
                   | ({table.score.floor} if table.score and table.score.floor and short_name(table.score.floor) == own else set()))
    parts = []
    for f in names:
        v = table.floors.get(f)
        parts.append(f"floor: {md(f)}" + ("" if v is None or math.isnan(v) else f", Original's mean {v:.3f}"))
    return "".join(f"; {p}" for p in parts)


def column_legend(table: TaskTable, headers: dict[str, str]) -> list[str]:
    """One line per metric column: its header, full name (judge or classifier, n), score role and floor."""
    roles = score_roles(table)
    lines = []
    for c in table.metric_columns:
        role = f" — {roles[c]}" if c in roles else ""
        lines.append(f"- **{headers[c]}**: {md(c)}{role}{floor_text(table, c)}")
    return lines


def table_notes(table: TaskTable, bands: dict, pairs: set, citations: list[str], mixed_notes: list[str]) -> list[str]:
    """The paragraphs under a task table: column list, paired verdicts, why unscored, citations, mixed rows.
    Each is its own paragraph (one markdown line break would run them together)."""
    notes = []
    if len(bands) > 1:
        notes.append(verdict_text(sorted(bands, key=lambda r: bands[r]), pairs))
    if table.unscored:
        notes.append(f"No scores, so no ranks: {table.unscored}.")
    for k, source in enumerate(citations, 1):
        notes.append(f"[{k}] Reported figure, not re-run here: {source}; shown under every column of that metric whose protocol matches.")
    for k, note in enumerate(mixed_notes, 1):
        notes.append(f"†{k} {note} — several under one setting hash: comparable by protocol, but check before citing.")
    return [line for note in notes for line in ("", note)]


def details(summary: str, body: list[str]) -> list[str]:
    """A collapsed GitHub block; the blank lines around the body let the markdown inside render."""
    return ["", f"<details><summary>{summary}</summary>", "", *body, "", "</details>"]


def stale_of(row) -> str:
    """The row's stale-tuning reasons ("" when current); records and tables before the `stale` column read ""."""
    value = row.get("stale", "")
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)


def settings_lines(table: TaskTable) -> list[str]:
    """The Settings list: every setting hash spelled out (hyper-parameters and their source, budget, options)."""
    shared_options = table.rows["task_options"].nunique() == 1
    lines = [f"Task options of every row: {md(table.rows['task_options'].iloc[0])}", ""] if shared_options else []
    for _, row in table.rows.drop_duplicates("setting_hash").iterrows():
        source = "" if row["method"] == row["label"] else f" ({md(row['method'])})"
        options = "" if shared_options else f"; task options {md(row['task_options'])}"
        stale = f"; stale: {md(stale_of(row))}" if stale_of(row) and "tuned" in row["hparams_source"] else ""
        origin = f" ({md(row['hparams_source'])}{stale})" if row["hparams_source"] else ""
        lines.append(
            f"- `{row['setting_hash'][:6]}` {md(row['row'])}{source}: hyper-parameters{origin} {md(row['resolved'])}; budget {md(row['budget'])}{options}"
        )
    return lines


def table_lines(table: TaskTable, reported: list[Reported]) -> tuple[list[str], list[str]]:
    """(the task table with its column list, the notes under it)."""
    headers = column_headers(table)
    header = ["method", "rank", "score ↑"] + [headers[c] for c in table.columns] + ["n", "setting"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---", "---:", "---:"] + ["---:"] * len(table.columns) + ["---:", "---"]) + "|"]
    bests = {c: best_rows(table, c) for c in table.columns}
    pairs = separated_pairs(table)
    bands = score_bands(table, pairs)
    mixed_notes = []
    for i, row in table.rows.iterrows():
        name = f"*{md(row['row'])}* (ref)" if row["reference"] else md(row["row"])
        if row["mixed"]:
            mixed_notes.append(md(f"{row['row']}: {row['mixed']}"))
            name += f" †{len(mixed_notes)}"
        rank = band_text(bands[row["row"]]) if row["row"] in bands else "–"
        cells = [name, rank, score_cell(row)]
        cells += [f"**{value_cell(table, row, c)}**" if i in bests[c] else value_cell(table, row, c) for c in table.columns]
        cells.append(f"{int(row['n'])} ({int(row['targets'])}×{int(row['seeds'])})")
        cells.append(f"`{row['setting_hash'][:6]}`" + _source_tag(row["hparams_source"], stale_of(row)))
        lines.append("| " + " | ".join(cells) + " |")
    citations = []
    for label, source, values in reported_rows(table.task, table.columns, list(reported)):
        if source not in citations:
            citations.append(source)
        cells = [f"_{label} (reported)_ [{citations.index(source) + 1}]", "–", ""]
        cells += [f"_{values[c]:.3f}_" if c in values else "" for c in table.columns]
        cells += ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", *column_legend(table, headers)]
    return lines, table_notes(table, bands, pairs, citations, mixed_notes)


def plot_lines(task: str, plots: list[str]) -> list[str]:
    """The task's plots, collapsed so that the tables read one after another."""
    names = [p.rsplit("/", 1)[-1].removesuffix(".png") for p in plots]
    short = [n.removeprefix(f"{_slug(task)}-") for n in names]
    images = [f"![{md(task)}: {n}]({p})" for n, p in zip(names, plots)]
    return details(f"Plots: {md(', '.join(short))}", [line for img in images for line in (img, "")][:-1])


def render_task(table: TaskTable, reported: list[Reported] = (), plots: list[str] = ()) -> str:
    kind = f" ({table.kind})" if table.kind else ""
    lines = [f"## {md(table.task)}{kind}", ""]
    if table.rows.empty:
        lines.append("No finished jobs.")
    else:
        body, notes = table_lines(table, reported)
        lines += body + notes
        lines += details(f"Settings ({table.rows['setting_hash'].nunique()} setting hashes)", settings_lines(table))
    if plots:
        lines += plot_lines(table.task, list(plots))
    if table.failed:
        lines.append("")
        lines.append(f"Failed jobs ({len(table.failed)}):")
        for f in sorted(table.failed, key=lambda f: (f["label"], str(f["target"]), f["seed"])):
            lines.append(f"- {md(f['label'])} target {md(f['target'])} seed {md(f['seed'])}: {md_line(f['error'])}")
    return "\n".join(lines) + "\n"


def _source_tag(source: str, stale: str = "") -> str:
    """' tuned' / ' ref' / ' given' after the setting hash, ' tuned (stale: rule)' for tuning that is no longer
    current; nothing for records that do not say."""
    if not source:
        return ""
    mark = f" (stale: {md(stale)})" if stale else ""
    return " " + ", ".join(f"tuned{mark}" if s.startswith("tuned") else SOURCE_TAGS.get(s, md(s)) for s in source.split(", "))


def render_overall(tables: list[TaskTable]) -> str:
    df = overall_ranks(tables)
    if df.empty:
        return ""
    header = list(df.columns)
    lines = ["## Overall rank", "", "| " + " | ".join(header) + " |", "|" + "|".join("---" if h == "method" else "---:" for h in header) + "|"]
    for _, r in df.iterrows():
        rate = "–" if pd.isna(r["win rate"]) else f"{r['win rate']:.2f}"
        rank = "–" if pd.isna(r["rank"]) else str(r["rank"])
        cells = [rank, md(r["method"])] + [str(r[t.task]) for t in tables] + [rate, str(r["tasks"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", OVERALL]
    return "\n".join(lines) + "\n"


def rule_comparison(table: TaskTable) -> list[tuple[str, list[str], list[str], float]]:
    """(other rule, order under the table's rule, order under the other, Kendall's τ-b of the two scores) per other
    rule: the ranked rows both rules score; τ nan with fewer than two rows or a constant score."""
    from scipy.stats import kendalltau

    mine = {r: v for r, v in zip(table.rows["row"], table.rows["score mean"]) if not pd.isna(v)} if not table.rows.empty else {}
    ranked = set(table.rows.loc[~table.rows["reference"], "row"]) if not table.rows.empty else set()
    out = []
    for rule, theirs in table.other_rules.items():
        both = sorted(r for r in mine if r in theirs and r in ranked)
        if len(both) < 2:
            continue
        order = sorted(both, key=lambda r: (-round(mine[r], 12), r))
        other = sorted(both, key=lambda r: (-round(theirs[r], 12), r))
        tau = kendalltau([mine[r] for r in both], [theirs[r] for r in both]).statistic
        out.append((rule, order, other, float(tau)))
    return out


def render_rule_comparison(tables: list[TaskTable]) -> str:
    """How each task's order moves under the other ranking rule(s): is the verdict robust to the rule?"""
    rows = [(t, *c) for t in tables for c in rule_comparison(t)]
    if not rows:
        return ""
    rule = tables[0].rule
    lines = ["## The verdict under the other ranking rule", "",
             f"Each task's point order under this leaderboard's rule (`{rule}`) and under each other rule (`--rule`), and "
             "Kendall's τ-b of the two mean scores over the ranked rows (1: the same order; ties count as in τ-b).", "",
             f"| task | rule | order under `{rule}` | order under the rule | τ |", "|---|---|---|---|---:|"]
    for t, other, order, theirs, tau in rows:
        tau_text = "–" if math.isnan(tau) else f"{tau:.2f}"
        lines.append(f"| {md(t.task)} | `{other}` | {' ≻ '.join(map(md, order))} | {' ≻ '.join(map(md, theirs))} | {tau_text} |")
    return "\n".join(lines) + "\n"


def render_provenance(tables: list[TaskTable]) -> str:
    frames = [t.rows for t in tables if not t.rows.empty]
    if not frames:
        return ""
    rows = pd.concat(frames, ignore_index=True)

    def values(col: str) -> str:
        return md(", ".join(sorted({v for cell in rows[col] for v in str(cell).split(", ") if v})))

    starts = pd.concat([rows["first_started"], rows["last_started"]]).dropna()
    span = f"{starts.min()} – {starts.max()}" if len(starts) else "unknown"
    return "\n".join(
        [
            "## Provenance",
            "",
            f"- suite(s): {values('suites')}",
            f"- versions: {values('versions')}",
            f"- git: {values('gits')}",
            f"- records started: {span}",
            "",
        ]
    )


def render_definitions(tables: list[TaskTable]) -> str:
    """What the tables mean, once, after them: the ranking rule and bands, how to read a cell, where
    hyper-parameters come from (only when a row says)."""
    ranked = [t for t in tables if not t.rows.empty]
    if not ranked:
        return ""
    lines = ["## Definitions", "", "### Ranking rule", "", RANKING.format(rule=RULE_TEXT[ranked[0].rule]), "",
             "### Reading the task tables", "", *(line.format(resamples=RESAMPLES) for line in LEGEND)]
    if any(t.rows["hparams_source"].astype(bool).any() for t in ranked):
        lines += ["", "### Where hyper-parameters come from", "", SOURCES]
    return "\n".join(lines) + "\n"


def render_markdown(
    tables: list[TaskTable],
    title: str = "unlearn-bench leaderboard",
    reported: list[Reported] = (),
    plots: dict[str, list[str]] | None = None,
    ignored: list[tuple[str, str]] = (),
    sequences: tuple[list, dict] = ((), {}),
    rehearsal: tuple[int, int] = (0, 0),
) -> str:
    """The whole leaderboard, top-down: a short lead, the overall rank, each task's table, the rule comparison and the
    sequences, then the definitions (aggregate's `rule`, default DEFAULT_RULE), provenance and ignored files.
    `sequences`: (leaderboard.sequences.SequenceTable list, their plots);
    `rehearsal`: (rehearsal records, all records): any rehearsal record puts a banner on top."""
    parts = [f"# {title}{' — REHEARSAL' if rehearsal[0] else ''}\n"]
    if rehearsal[0]:
        parts.append(REHEARSAL_BANNER.format(n=rehearsal[0], total=rehearsal[1]) + "\n")
    if not tables and not sequences[0]:
        parts.append("No records found.\n")
    elif any(not t.rows.empty for t in tables):
        parts.append(LEAD.format(rule=tables[0].rule) + "\n")
    plots = plots or {}
    parts.append(render_overall(tables))
    parts.extend(render_task(t, reported, plots.get(t.task, [])) for t in tables)
    parts.append(render_rule_comparison(tables))
    parts.append(render_sequences(list(sequences[0]), sequences[1]))
    parts.append(render_definitions(tables))
    parts.append(render_provenance(tables))
    parts.append(render_ignored(ignored))
    return "\n".join(p for p in parts if p)


REHEARSAL_BANNER = (
    "> **Rehearsal, not results.** {n} of these {total} records come from `unlearn-bench run --rehearse`: every job of the "
    "suite ran end to end through the harness on tiny randomly initialised stand-ins of its models and data, for a few "
    "optimiser steps, judged on a few images (bench/runner/rehearsal.py). The numbers say that the suite runs, not how "
    "any method performs: never cite them.")


def render_ignored(ignored: list[tuple[str, str]]) -> str:
    """Every record file the leaderboard left out, and why (unvouched, unreadable, a duplicate)."""
    if not ignored:
        return ""
    lines = [f"## Ignored record files ({len(ignored)})", "",
             "Not counted: files the driver did not vouch for (bench/runner/voucher.py), unreadable ones and second records of a job.", ""]
    lines += [f"- `{md(path).replace('`', '')}`: {md_line(why)}" for path, why in sorted(ignored)]
    return "\n".join(lines) + "\n"
