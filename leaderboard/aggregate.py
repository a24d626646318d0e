"""Records -> per-task tables of mean ± std over targets and seeds.

Rows are keyed by (task, label, setting_hash): records from different protocol settings,
hyper-parameters or budgets are never averaged together.  The suite name and the package
versions are *not* part of the setting (a suite is a selection of jobs, and resume relies on the
same job having the same id in `mini` and `mini-full`; a library upgrade is not a protocol
change — PROTOCOL_VERSION is).  Instead every row carries the suites, versions and git hashes of
its records, and a row that mixes several is flagged in the table (`mixed` column, footnote).
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np
import pandas as pd

from bench.core.record import RunRecord, parse_record
from leaderboard.paired import MIN_JOBS, Job, PairedBootstrap, interval, mean_per_key
from leaderboard.score import DEFAULT_RULE, RULES, ScoreColumns, check_rule, is_floor, score_columns, score_of

REFERENCE_ROWS = ("original", "retrain")
COST_COLUMNS = {"time (s)": ("unlearn_seconds", "↓"), "peak mem (MB)": ("peak_mem_mb", "↓")}
# costs shown only on tasks whose records have them: the attack metric's own seconds (cost.metric_seconds)
OPTIONAL_COST_COLUMNS = {"attack (s)": ("attack_seconds", "↓")}
# metric short names shown first, in this order; anything else follows alphabetically
LEADING_METRICS = ("UA", "RA", "AS", "AS-train", "AS-test", "FID")


def short_name(column: str) -> str:
    """'UA (digit-cnn)' -> 'UA'; 'AS-train (ViT-B-32 laion2b)' -> 'AS-train'."""
    return re.split(r"[\s(]", column.strip(), maxsplit=1)[0]


def column_order_key(column: str) -> tuple:
    s = short_name(column)
    if s in LEADING_METRICS:
        return (0, LEADING_METRICS.index(s), column)
    return (1, s.lower(), column)


def stale_reasons(r: RunRecord, rule: str) -> list[str]:
    """Why a tuned record's hyper-parameters may no longer be the ones its search would choose today: selected under
    another ranking rule than the leaderboard's, another protocol version than the job ran under, or other method
    code than the job ran ("method code unknown" when the suite records no hash for it); "provenance unknown" when the
    suite recorded none of these (tuned before issue 38). [] otherwise."""
    if not str(r.hparams_source or "").startswith("tuned"):
        return []
    t = r.tuned_under
    if not t or not any(t.get(k) for k in ("rule", "protocol_version", "method_code")):
        return ["provenance unknown"]
    out = []
    if t.get("rule") != rule:
        out.append("rule")
    if str(t.get("protocol_version")) != str(r.protocol_version):
        out.append("protocol")
    if not t.get("method_code"):
        out.append("method code unknown")
    elif t.get("method_code") != r.method_code:
        out.append("method code")
    return out


def records_frame(records: Iterable[RunRecord], rule: str = DEFAULT_RULE) -> pd.DataFrame:
    rows = []
    for r in records:
        rows.append(
            {
                "task": r.task,
                "task_kind": r.task_kind,
                "label": r.label,
                "method": r.method,
                "setting_hash": r.setting_hash,
                "suite": r.suite,
                "version": f"unlearn-bench {r.versions.get('unlearn-bench', '?')} / torch {r.versions.get('torch', '?')}",
                "git": r.git,
                "started": r.started,
                "resolved": _compact(r.hparams_resolved),
                "budget": _compact(r.budget),
                "task_options": _compact(r.task_config),
                "target": r.target,
                "seed": r.seed,
                "status": r.status,
                "error": r.error,
                "unlearn_seconds": r.cost.unlearn_seconds,
                "peak_mem_mb": r.cost.peak_mem_mb,
                "attack_seconds": r.cost.metric_seconds.get("attack-asr"),
                "hparams_source": r.hparams_source,  # tuned (budget) / reference / given; absent before v0.2 records
                "stale": ", ".join(stale_reasons(r, rule)),  # a tuned row selected under other rule/protocol/code
                "instances": r.instances,  # column -> PerInstance (v3 records; {} before)
                **{f"metric::{k}": v for k, v in r.metrics.items()},
            }
        )
        rows[-1]["key"] = (rows[-1]["task_options"], r.target, r.seed)  # pairs a job with other rows' and Original's
    return pd.DataFrame(rows)


@dataclass
class TaskTable:
    task: str
    rows: pd.DataFrame  # one row per (label, setting_hash); columns "<col> mean", "<col> std"
    columns: list[str]  # metric + cost columns in display order
    directions: dict[str, str]
    failed: list[dict] = field(default_factory=list)
    kind: str | None = None  # "class" | "concept" | "style"
    per_target: pd.DataFrame | None = None  # (row, target) -> metric means over seeds (per-class plots)
    score: ScoreColumns | None = None  # the columns the ranking scalar reads; None: no score on this task
    unscored: str | None = None  # why rows have no score (e.g. no Original records)
    # the paired bootstrap's score resamples: row name -> {job key: (B,) scores}; bands are decided from them
    paired_scores: dict = field(default_factory=dict)
    point_scores: dict = field(default_factory=dict)  # row name -> {job key: the job's score} (duplicates averaged)
    bootstrap: PairedBootstrap | None = None
    rule: str = DEFAULT_RULE  # the ranking rule the scores follow (leaderboard/score.py)
    # the other rules' mean scores per row (point values): rule -> {row name: mean score}, for the rule comparison
    other_rules: dict = field(default_factory=dict)
    floors: dict = field(default_factory=dict)  # floor column -> its mean over Original's records (the legend quotes it)

    @property
    def metric_columns(self) -> list[str]:
        return [c for c in self.columns if c not in COST_COLUMNS and c not in OPTIONAL_COST_COLUMNS]


def directions_from(records: Iterable[RunRecord]) -> dict[str, str]:
    out: dict[str, str] = {}
    for r in records:
        out.update(r.directions)
    return out


def _joined(values: pd.Series) -> str:
    return ", ".join(sorted({str(v) for v in values if v is not None and v == v}))


def aggregate(records: list[RunRecord], tasks: Iterable[str] | None = None, methods: Iterable[str] | None = None,
              rule: str = DEFAULT_RULE) -> list[TaskTable]:
    """One table per task; scores by `rule` (leaderboard/score.py RULES), the other rules' mean scores alongside.
    A sequence's steps are not ranked here: they are judged after earlier erasures (leaderboard/sequences.py)."""
    check_rule(rule)
    records = [r for r in map(parse_record, records) if not r.sequence]  # sequence steps: leaderboard/sequences.py
    df = records_frame(records, check_rule(rule))
    if df.empty:
        return []
    if tasks:
        df = df[df.task.isin(list(tasks))]
    references = df[(df.status == "ok") & (df.method == "original")]  # before --methods: scores need Original
    if methods:
        df = df[df.label.isin(list(methods)) | df.method.isin(list(methods))]
    directions = directions_from(records)
    tables = []
    for task, tdf in sorted(df.groupby("task"), key=lambda kv: kv[0]):
        ok = tdf[tdf.status == "ok"]
        if ok.empty:
            failed = tdf[["label", "target", "seed", "error"]].to_dict("records")
            tables.append(TaskTable(task, pd.DataFrame(), [], {}, failed, _kind(tdf)))
            continue
        recorded = sorted((c for c in ok.columns if c.startswith("metric::") and ok[c].notna().any()), key=lambda c: column_order_key(c[8:]))
        floor_cols = [c for c in recorded if is_floor(c[8:])]  # reference values the score reads, not results: no column
        metric_cols = [c for c in recorded if c not in floor_cols]
        names = [c.removeprefix("metric::") for c in metric_cols]
        costs = COST_COLUMNS | {k: v for k, v in OPTIONAL_COST_COLUMNS.items() if ok[v[0]].notna().any()}
        value_cols = metric_cols + floor_cols + [src for src, _ in costs.values()]  # floors: "<floor> mean", not shown
        display = names + list(costs)
        dirs = {n: directions.get(n, "↑") for n in names} | {k: d for k, (_, d) in costs.items()}
        ok = ok.assign(**{c: pd.to_numeric(ok[c], errors="coerce") for c in value_cols})
        floor_names = [c.removeprefix("metric::") for c in floor_cols]
        cols = score_columns(names + floor_names, rule)
        task_refs = references[references.task == task]
        ok = ok.assign(score=job_scores(ok, task_refs, cols))
        others = {}
        for other in (r for r in RULES if r != rule):
            per_job = ok.assign(score=job_scores(ok, task_refs, score_columns(names + floor_names, other)))
            others[other] = per_job.groupby(["label", "setting_hash"])["score"].mean()
        grouped = ok.groupby(["label", "setting_hash"], sort=True)
        agg = grouped[value_cols + ["score"]].agg(["mean", "std"])
        agg.columns = [f"{_display(c)} {stat}" for c, stat in agg.columns]
        bootstrap = PairedBootstrap(task, list(ok["key"]) + list(task_refs["key"]))
        jobs = {g: [Job(r["key"], _metrics(r), r["instances"]) for _, r in rows.iterrows()] for g, rows in grouped}
        per_row_scores = paired_job_scores(bootstrap, jobs, task_refs, cols)
        for col in metric_cols + ["score"]:  # 95% intervals: the paired, hierarchical bootstrap (leaderboard/paired.py)
            name = _display(col)
            cis = {}
            for g, row_jobs in jobs.items():
                per_key = per_row_scores[g] if col == "score" else mean_per_key(_by_key(row_jobs, bootstrap.column, name))
                point = float(agg.loc[g, f"{name} mean"])
                cis[g] = interval(bootstrap.mean(per_key), point) if len(per_key) >= MIN_JOBS else None
            agg[f"{name} ci_lo"] = [cis[k][0] if cis[k] else np.nan for k in agg.index]
            agg[f"{name} ci_hi"] = [cis[k][1] if cis[k] else np.nan for k in agg.index]
        agg["n"] = grouped.size()
        agg["targets"] = grouped["target"].nunique()
        agg["seeds"] = grouped["seed"].nunique()
        agg["method"] = grouped["method"].first()
        for col, name in (("suite", "suites"), ("version", "versions"), ("git", "gits"), ("hparams_source", "hparams_source")):
            agg[name] = grouped[col].agg(_joined)
        agg["stale"] = grouped["stale"].agg(lambda v: ", ".join(dict.fromkeys(x for s in v for x in str(s).split(", ") if x)))
        for col in ("resolved", "budget", "task_options"):
            agg[col] = grouped[col].agg(lambda v: " | ".join(sorted(set(v))))
        agg["first_started"] = grouped["started"].min()
        agg["last_started"] = grouped["started"].max()
        agg = agg.reset_index()
        agg["mixed"] = [
            "; ".join(
                [f"{what}: {vals}" for what, vals in (("suites", s), ("versions", v)) if ", " in vals]
                + (["resolved hyper-parameters differ (a method's defaults changed between runs)"] if " | " in h else [])
                + (["resolved task options differ (a task's defaults changed between runs)"] if " | " in o else [])
            )
            for s, v, h, o in zip(agg["suites"], agg["versions"], agg["resolved"], agg["task_options"])
        ]
        # a label seen under several settings keeps them apart, named by their hash
        multi = agg.groupby("label")["setting_hash"].transform("nunique") > 1
        agg["row"] = agg["label"].where(~multi, agg["label"] + " [" + agg["setting_hash"].str[:6] + "]")
        agg["reference"] = agg["method"].isin(REFERENCE_ROWS)  # the method decides, never the label
        order = {name: i for i, name in enumerate(REFERENCE_ROWS)}
        agg["_order"] = agg["method"].map(order).fillna(len(order))
        agg["_score"] = -agg["score mean"].round(12)  # ranked rows best first; unscored last, by name
        agg = agg.sort_values(["_order", "_score", "row"], na_position="last").drop(columns=["_order", "_score"]).reset_index(drop=True)
        per_target = per_target_means(ok, agg, metric_cols)
        failed = tdf[tdf.status != "ok"][["label", "target", "seed", "error"]].to_dict("records")
        unscored = None if cols else "the task has no forget/keep metric pair the score reads"
        if cols and not agg["score mean"].notna().any():
            unscored = "no Original records for this task, so nothing to normalise against"
        names_of = dict(zip(zip(agg["label"], agg["setting_hash"]), agg["row"]))
        paired = {names_of[g]: v for g, v in per_row_scores.items()}
        points = {names_of[g]: {k: float(v) for k, v in rows.groupby("key")["score"].mean().items() if k in per_row_scores[g]}
                  for g, rows in grouped}
        other_rules = {r: {names_of[g]: float(v) for g, v in means.items() if np.isfinite(v)} for r, means in others.items()}
        floors = {c: float(pd.to_numeric(task_refs[f"metric::{c}"], errors="coerce").mean())
                  for c in floor_names if f"metric::{c}" in task_refs}
        tables.append(TaskTable(task, agg, display, dirs, failed, _kind(tdf), per_target, cols, unscored, paired, points, bootstrap,
                                rule, other_rules, floors))
    return tables


def _metrics(row: pd.Series) -> dict[str, float]:
    return {c.removeprefix("metric::"): row[c] for c in row.index if c.startswith("metric::")}


def _by_key(jobs: list[Job], fn, *args) -> dict:
    """job key -> [fn(job, *args) for each of the row's jobs on that key]"""
    out: dict = {}
    for j in jobs:
        out.setdefault(j.key, []).append(fn(j, *args))
    return out


def paired_job_scores(bootstrap: PairedBootstrap, jobs: dict, originals: pd.DataFrame, cols: ScoreColumns | None) -> dict:
    """(label, setting) -> {job key: (B,) resampled scores}; each against Original's job on the same key,
    resampled with the same draw (else against the fixed reference job_scores uses); {} when unscored."""
    if cols is None or originals.empty:
        return {g: {} for g in jobs}
    reference = reference_lookup(originals, cols)
    orig_jobs, orig_by_target = {}, {}
    for _, r in originals.sort_values("seed").iterrows():
        orig_jobs.setdefault(r["key"], Job(r["key"], _metrics(r), r["instances"]))
        orig_by_target.setdefault(r["key"][:2], orig_jobs[r["key"]])

    def one(j: Job) -> np.ndarray:
        # Original on the same key; else on the same options and target (Original runs one seed: its images do
        # not depend on it), re-keyed so that its instances are drawn with the job's own draw; else fixed values
        ref = orig_jobs.get(j.key)
        if ref is None and j.key[:2] in orig_by_target:
            ref = dataclasses.replace(orig_by_target[j.key[:2]], key=j.key)
        return bootstrap.scores(j, ref if ref is not None else reference(*j.key), cols)

    out = {}
    for g, row_jobs in jobs.items():
        per_key = mean_per_key(_by_key(row_jobs, one))
        out[g] = {k: v for k, v in per_key.items() if np.isfinite(v).any()}
    return out


def reference_lookup(originals: pd.DataFrame, cols: ScoreColumns):
    """(task options, target, seed) -> Original's forget/keep values to score against: the same task
    options, target and seed (paired: the same evaluation seed); failing that, the mean over Original's
    seeds; failing that, the same target under any options; failing that, {}."""
    used = [f"metric::{c}" for c in cols.used if f"metric::{c}" in originals.columns]  # a floor may be the job's own
    if any(f"metric::{c}" not in used for c in (cols.forget, cols.keep)):
        return lambda options, target, seed: {}
    orig = originals.assign(**{c: pd.to_numeric(originals[c], errors="coerce") for c in used})
    by_seed = orig.groupby(["task_options", "target", "seed"])[used].mean()
    by_options = orig.groupby(["task_options", "target"])[used].mean()
    by_target = orig.groupby("target")[used].mean()

    def reference(options: str, target: str, seed) -> dict:
        for table, key in ((by_seed, (options, target, seed)), (by_options, (options, target)), (by_target, target)):
            if key in table.index:
                return {c.removeprefix("metric::"): v for c, v in table.loc[key].items()}
        return {}

    return reference


def job_scores(ok: pd.DataFrame, originals: pd.DataFrame, cols: ScoreColumns | None) -> pd.Series:
    """The ranking scalar of each job against Original (reference_lookup says which Original); nan
    when the task has no score or no Original."""
    if cols is None or originals.empty:
        return pd.Series(np.nan, index=ok.index)
    reference = reference_lookup(originals, cols)
    return pd.Series(
        [score_of(cols, {c: pd.to_numeric(row.get(f"metric::{c}"), errors="coerce") for c in cols.used}, reference(*row["key"]))
         for _, row in ok.iterrows()],
        index=ok.index,
        dtype=float,
    )


def per_target_means(ok: pd.DataFrame, agg: pd.DataFrame, metric_cols: list[str]) -> pd.DataFrame:
    """Mean over seeds per (row, target): what per-class bar charts show."""
    names = dict(zip(zip(agg["label"], agg["setting_hash"]), agg["row"]))
    pt = ok.groupby(["label", "setting_hash", "target"], sort=True)[metric_cols].mean().reset_index()
    pt.insert(0, "row", [names[(l, h)] for l, h in zip(pt["label"], pt["setting_hash"])])
    pt.columns = [c.removeprefix("metric::") for c in pt.columns]
    return pt.drop(columns=["label", "setting_hash"]).sort_values(["row", "target"], key=_natural).reset_index(drop=True)


def _compact(obj) -> str:
    """A dict as short, stable text: `lr=0.0001, steps=200` (nested values as JSON)."""
    import json

    if not obj:
        return "–"
    if isinstance(obj, dict):
        return ", ".join(f"{k}={json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v}" for k, v in sorted(obj.items()))
    return str(obj)


def _natural(s: pd.Series) -> pd.Series:
    """Sort targets '2' < '10' numerically when they are numbers."""
    if s.name == "target":
        return s.map(lambda v: (0, int(v), "") if str(v).isdigit() else (1, 0, str(v)))
    return s


def _kind(tdf: pd.DataFrame) -> str | None:
    kinds = tdf["task_kind"].dropna()
    return str(kinds.iloc[0]) if len(kinds) else None


def _display(col: str) -> str:
    if col.startswith("metric::"):
        return col.removeprefix("metric::")
    for name, (src, _) in (COST_COLUMNS | OPTIONAL_COST_COLUMNS).items():
        if src == col:
            return name
    return col
