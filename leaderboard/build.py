"""The leaderboard as a file: markdown (+ plots next to it), CSV or JSON, from a list of records."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import pandas as pd

from bench.core.record import RunRecord, parse_record
from leaderboard.aggregate import TaskTable, aggregate
from leaderboard.escape import csv_cell
from leaderboard.plots import write_plots
from leaderboard.rank import rank_table, score_bands
from leaderboard.render import render_markdown
from leaderboard.reported import load_reported
from leaderboard.samples import write_sample_grids
from leaderboard.score import DEFAULT_RULE
from leaderboard.sequences import sequence_tables, write_sequence_plots

FORMATS = ("markdown", "csv", "json")
KEY_COLUMNS = ["task", "row", "label", "method", "setting_hash", "reference", "rank", "n", "targets", "seeds", "suites", "versions", "gits", "first_started", "last_started", "mixed"]
SCORE_COLUMNS = ["rank_best", "rank_worst", "score mean", "score std", "score ci_lo", "score ci_hi"]


def flat_frame(tables: list[TaskTable]) -> pd.DataFrame:
    """One row per (task, label, setting): key columns first, then "<col> mean/std" in table order."""
    frames = []
    for t in tables:
        if t.rows.empty:
            continue
        ranks, bands = rank_table(t), score_bands(t)

        def ints(values):
            return pd.array(values, dtype="Int64")

        df = t.rows.assign(
            task=t.task,
            rank=ints([ranks[r][0] if r in ranks else None for r in t.rows["row"]]),
            rank_best=ints([bands[r][0] if r in bands else None for r in t.rows["row"]]),
            rank_worst=ints([bands[r][1] if r in bands else None for r in t.rows["row"]]),
        )
        value_cols = [f"{c} {s}" for c in t.columns
                      for s in (("mean", "std", "ci_lo", "ci_hi") if c in t.metric_columns else ("mean", "std"))]
        frames.append(df[KEY_COLUMNS + SCORE_COLUMNS + value_cols])
    if not frames:
        return pd.DataFrame(columns=KEY_COLUMNS + SCORE_COLUMNS)
    out = pd.concat(frames, ignore_index=True)
    num = out.select_dtypes("number").columns
    out[num] = out[num].round(6)
    return out


def build(records: Iterable[RunRecord | dict], fmt: str = "markdown", out_dir: Path | str | None = None, tasks: Iterable[str] | None = None, methods: Iterable[str] | None = None,
          ignored: list[tuple[str, str]] = (), rule: str = DEFAULT_RULE) -> str:
    """Text of the leaderboard; for markdown with out_dir, the plots are written under out_dir/plots/.
    `ignored`: (file, why) of the record files left out (bench/runner/records.scan_records), listed in markdown;
    `rule`: the ranking rule (leaderboard/score.py RULES)."""

    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    records = sorted((parse_record(r) for r in records), key=lambda r: r.job_id)  # input order never matters
    ordinary = [r for r in records if not r.sequence]  # a sequence's steps have a view of their own
    tables = aggregate(ordinary, tasks=tasks, methods=methods, rule=rule)
    if fmt == "markdown":
        plots, chains = {}, sequence_tables(records, tasks=tasks, methods=methods, rule=rule)
        chain_plots = {}
        if out_dir is not None:
            plots = write_plots(tables, Path(out_dir))
            for task, paths in write_sample_grids(tables, ordinary, Path(out_dir)).items():
                plots.setdefault(task, []).extend(paths)
            chain_plots = write_sequence_plots(chains, Path(out_dir))
        rehearsed = [r for r in records if r.rehearsal]
        return render_markdown(tables, reported=load_reported(), plots=plots, ignored=ignored, sequences=(chains, chain_plots),
                               rehearsal=(len(rehearsed), len(records)))
    df = flat_frame(tables)
    rehearsal_hashes = {r.setting_hash for r in records if r.rehearsal}
    if rehearsal_hashes and "setting_hash" in df:  # a rehearsal's rows say so in every format
        df.insert(0, "rehearsal", df["setting_hash"].isin(rehearsal_hashes))
    if fmt == "csv":
        text_cols = df.select_dtypes(include=["object", "str"]).columns
        df[text_cols] = df[text_cols].map(csv_cell)
        return df.to_csv(index=False, lineterminator="\n")
    rows = json.loads(df.to_json(orient="records"))
    return json.dumps(rows, indent=2, ensure_ascii=False, sort_keys=False) + "\n"
