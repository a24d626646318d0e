"""`unlearn-bench submit FILE.py[:Name]` (or an installed plug-in's name): validate, run over a suite, rank.

Every check happens before the suite starts, so a broken plug-in costs seconds and never touches
the records already in the results directory. Where a method process here would run without the
confinement that keeps it from the records, the record key and the cluster (no network, writes only
its directory, no read of the harness's secrets: bench/runner/sandbox.py GUARDS), submit refuses before
running anything, and it ranks no row whose records say so, unless `--accept-unconfined`.
"""
from __future__ import annotations

import math
import os
import shutil
import time
from pathlib import Path

import torch

from bench.core.context import RunContext
from bench.core.errors import NonFiniteLossError, PluginError
from bench.core.log import get_logger
from bench.runner import sandbox
from bench.runner.evaluator import run_suite, write_leaderboard
from bench.runner.job import load_weights
from bench.runner.method_info import MethodHandle, method_handle
from bench.runner.method_process import MethodProcessError, method_runner
from bench.runner.outdir import results_lock
from bench.runner.plan import JobSpec, load_suite
from bench.runner.plugins import is_file_reference, load_submission, read_method_source
from bench.runner.records import iter_records
from bench.runner.steps import StepBudgetError, check_steps, weights_changed
from bench.runner.timeout import SMOKE_TIMEOUT_S
from bench.runner.unlearn_stage import UnlearnRequest
from leaderboard.aggregate import aggregate
from leaderboard.rank import overall_ranks, rank_table
from leaderboard.render import fmt
from tasks.base import TASKS

SMOKE_TASK = "mini-digits-class"
SMOKE_STEPS = 2
SMOKE_OPTIONS = {"forget_samples": 4, "remain_samples_per_class": 2, "sample_steps": 2}  # the smoke run evaluates nothing

log = get_logger("submit")


def smoke_test(method_cls, ref: str, task_name: str = SMOKE_TASK, target: str = "0", timeout_s: float | None = None) -> dict:
    """Two capped steps on the smallest mini task, in a method process like every job's: the
    method runs, leaves finite weights, respects the cap, and ends within `timeout_s` (default
    SMOKE_TIMEOUT_S). `ref`: the method as a job names it (FILE.py[:Name] or a registry name)."""

    who = f"method {method_cls.name!r}"
    task_cls = TASKS.get(task_name)
    options = SMOKE_OPTIONS
    if task_cls.kind not in method_cls.task_kinds:
        # a concept/style-only method: the first mini task of a kind it applies to, default options
        fits = [n for n in TASKS.names() if n.startswith("mini-") and TASKS.get(n).kind in method_cls.task_kinds]
        if not fits:
            raise PluginError(f"{who} applies to {', '.join(method_cls.task_kinds)} tasks; no mini task of that kind is installed for its smoke run")
        task_name, task_cls, options = fits[0], TASKS.get(fits[0]), {}
    task = task_cls.make(options)
    if task_name != SMOKE_TASK:
        target = task.targets()[0]
    where = f"smoke run ({SMOKE_STEPS} steps on {task_name})"
    limit = timeout_s or SMOKE_TIMEOUT_S
    spec = JobSpec("submit-smoke", task_name, dict(options), target, ref, method_cls.name, {}, 0, {"max_steps": SMOKE_STEPS}, limit)
    sources = {ref: read_method_source(ref)} if is_file_reference(ref) else {}
    try:
        unlearned = method_runner().unlearn(UnlearnRequest(spec, sources, "cpu", torch.get_num_threads()), limit)
    except MethodProcessError as exc:
        if exc.error_type == "JobTimeout":
            raise PluginError(f"{who} {where}: {exc} (a hung method; --timeout raises the limit)") from None
        if exc.error_type in ("MethodProcessError", "SystemExit", "KeyboardInterrupt"):
            raise PluginError(f"{who} {where}: {exc}") from None  # a crash or an exit, not an exception of its own
        raise PluginError(f"{who} raised in its {where}: {exc}") from None
    ctx = RunContext(device=torch.device("cpu"), seed=0, task_kind=task.kind)
    inst = task.build(target, ctx)
    original = inst.model.frozen_copy()
    try:
        load_weights(inst.model, unlearned.weights, unlearned.method_name)
    except (MethodProcessError, NonFiniteLossError) as exc:
        raise PluginError(f"{where}: {exc}") from None
    finally:
        shutil.rmtree(os.path.dirname(unlearned.weights), ignore_errors=True)
    for k, v in unlearned.stats.items():
        if isinstance(v, float) and not math.isfinite(v):
            raise PluginError(f"{who} {where}: returned statistic {k!r} = {v}")
    try:
        check_steps(who, unlearned.steps, unlearned.optimizer_steps, weights_changed(inst.model.denoiser, original.denoiser), SMOKE_STEPS)
    except StepBudgetError as exc:
        raise PluginError(f"{where}: {exc}") from None
    return {"steps": unlearned.steps, "optimizer_steps": unlearned.optimizer_steps}


def submitted_method(ref: str) -> MethodHandle:
    """The submission, validated: a file is imported only in a method process (bench/runner/method_info.py),
    which checks its interface and that its name is free; an installed plug-in is loaded here."""
    if is_file_reference(ref):
        handle = method_handle(ref)
        handle.name  # noqa: B018 - describes it now: a broken file fails before anything else
        return handle
    return MethodHandle(ref, load_submission(ref))


def check_confinement(accept: bool) -> None:
    """Refuse (PluginError) where a method process here would be unconfined, unless `accept`."""
    here = sandbox.probe()
    missing = sandbox.unguarded(here)
    if missing and not accept:
        raise PluginError(f"a method process on this machine gets no {', '.join(missing)} confinement ({here[missing[0]]}): "
                          "a submitted method could rewrite or forge records or join the cluster; --accept-unconfined submits anyway")
    if missing:
        log.warning(f"submit: accepted without {', '.join(missing)} confinement (--accept-unconfined)")


def submit(args) -> int:
    t0 = time.time()
    accept = bool(getattr(args, "accept_unconfined", False))
    check_confinement(accept)
    ref = args.file
    if is_file_reference(ref):
        path, _, cls_name = ref.partition(":")
        ref = str(Path(path).expanduser().resolve()) + (f":{cls_name}" if cls_name else "")
    method_cls = submitted_method(ref)
    log.info(f"submit: {method_cls.name} ({ref}) passed the interface checks; smoke run…")
    smoke = smoke_test(method_cls, ref, timeout_s=getattr(args, "timeout", None))  # seconds; touches no results
    log.info(f"submit: smoke run ok ({smoke}); running suite {args.suite}")
    suite = load_suite(args.suite)
    # the suite's own rows run too (resume skips those already recorded) so the new row has company
    refs = [m.label for m in suite.methods if m.label != method_cls.name] + [ref]
    with results_lock(args.out):
        run_suite(args.suite, args, method_refs=refs)
        write_leaderboard(args.out, echo=False)
    unconfined = [r for r in iter_records(args.out) if r.label == method_cls.name and sandbox.unguarded(r.get("method_confinement"))]
    if unconfined and not accept:
        r = unconfined[0]
        raise PluginError(f"{method_cls.name} is not ranked: {len(unconfined)} of its jobs ran without {', '.join(sandbox.unguarded(r.get('method_confinement')))} "
                          f"confinement (e.g. {r.task} target {r.target}: {r.get('method_sandbox', 'none reported')}); --accept-unconfined ranks it")
    print(ranking_summary(args.out, method_cls.name))
    log.info(f"submit: {time.time() - t0:.0f} s from submit to ranked row; leaderboard: {Path(args.out) / 'LEADERBOARD.md'}")
    return 0 if _all_ok(args.out, method_cls.name) else 1


def _all_ok(results: str, label: str) -> bool:
    recs = [r for r in iter_records(results) if r.label == label]
    return bool(recs) and all(r.ok for r in recs)


def ranking_summary(results: str, label: str) -> str:
    """The submitted method's rows, with their rank on each task and overall."""

    records = list(iter_records(results))
    tables = aggregate(records)
    lines = []
    for table in tables:
        if table.rows.empty:
            continue
        ranks = rank_table(table)
        for _, row in table.rows[table.rows["label"] == label].iterrows():
            values = ", ".join(f"{c} = {fmt(row[f'{c} mean'], row[f'{c} std'], int(row['n']))}" for c in table.columns)
            if row["row"] not in ranks:  # no score: nothing to normalise against
                lines.append(f"{table.task}: {row['row']} is not ranked: no finished Original record on this task to score it against: {values}")
                continue
            r, n = ranks[row["row"]]
            tied = sum(1 for other, (r2, _) in ranks.items() if r2 == r and other != row["row"])
            place = f"ties for rank {r} of {n} with {tied} other row(s)" if tied else f"ranks {r} of {n}"
            lines.append(f"{table.task}: {row['row']} {place}: {values}")
    overall = overall_ranks(tables)
    for _, row in overall[overall["method"].str.split(" [", regex=False).str[0] == label].iterrows():
        if not row["tasks"]:  # no other ranked row on any of its tasks: nothing to win against
            lines.append(f"overall: {row['method']} is not ranked: no other method has finished jobs on its tasks")
            continue
        lines.append(f"overall: {row['method']} ranks {row['rank']} of {len(overall)} (mean win rate {row['win rate']:.2f} over {row['tasks']} task(s))")
    failed = [r for r in records if r.label == label and not r.ok]
    for r in failed:
        lines.append(f"failed: {r.task} target {r.target} seed {r.seed}: {r.error}")
    return "\n".join(lines) or f"{label}: no finished jobs to rank"
