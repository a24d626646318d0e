"""`unlearn-bench submit FILE.py[:Name]`: validate an outsider's method, run it over a suite, rank it."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from bench.context import Budget, RunContext
from bench.errors import NonFiniteLossError, PluginError

SMOKE_TASK = "mini-digits-class"
SMOKE_STEPS = 2


def smoke_test(method_cls, task_name: str = SMOKE_TASK, target: str = "0") -> None:
    """Two capped steps on the smallest mini task: the method runs, leaves finite weights, respects the cap."""
    from methods.base import make_hparams
    from methods.training import assert_finite_weights
    from tasks.base import TASKS

    task = TASKS.get(task_name)()
    try:
        hparams = make_hparams(method_cls, method_cls.defaults_by_kind.get(task.kind, {}))
        method = method_cls(hparams)
    except Exception as exc:
        raise PluginError(f"method {method_cls.name!r}: could not be constructed with its default hyper-parameters: {exc}") from exc
    ctx = RunContext(device=torch.device("cpu"), seed=0, task_kind=task.kind)
    inst = task.build(target, ctx)
    ctx.num_classes = inst.info.get("num_classes")
    try:
        method.unlearn(inst.model, inst.forget, inst.remain, Budget(max_steps=SMOKE_STEPS), ctx)
    except NonFiniteLossError as exc:
        raise PluginError(f"method {method_cls.name!r} smoke run: {exc}") from exc
    except Exception as exc:
        raise PluginError(f"method {method_cls.name!r} raised in its smoke run ({SMOKE_STEPS} steps on {task_name}): {type(exc).__name__}: {exc}") from exc
    try:
        assert_finite_weights(inst.model, method_cls.name)
    except NonFiniteLossError as exc:
        raise PluginError(f"smoke run: {exc}") from exc
    if ctx.steps_done > SMOKE_STEPS:
        raise PluginError(f"method {method_cls.name!r} took {ctx.steps_done} steps with Budget(max_steps={SMOKE_STEPS}); use budget.steps(n)")


def submit(args) -> int:
    from bench.cli import run_suite, write_leaderboard
    from bench.plugins import load_method_file
    from methods.base import METHODS

    t0 = time.time()
    ref = args.file
    path, _, cls_name = ref.partition(":")
    ref = str(Path(path).resolve()) + (f":{cls_name}" if cls_name else "")
    method_cls = load_method_file(ref)
    if method_cls.name in METHODS.names() and METHODS.get(method_cls.name).__module__ != method_cls.__module__:
        raise PluginError(f"method name {method_cls.name!r} is taken by a built-in method; choose another `name`")
    print(f"submit: {method_cls.name} ({ref}) passed the interface checks; smoke run…", file=sys.stderr)
    smoke_test(method_cls)
    print("submit: smoke run ok; running the suite", file=sys.stderr)
    from bench.plan import load_suite

    suite = load_suite(args.suite)
    # run the suite's own rows too (resume skips those already recorded) so the new row has company
    refs = [m.label for m in suite.methods] + [ref]
    run_suite(args.suite, args, method_refs=refs)
    text = write_leaderboard(args.out, echo=True)
    print(ranking_summary(args.out, method_cls.name), file=sys.stderr)
    print(f"submit: {time.time() - t0:.0f} s from submit to ranked row", file=sys.stderr)
    return 0 if text else 1


def ranking_summary(results: str, label: str) -> str:
    from leaderboard.aggregate import aggregate
    from leaderboard.rank import rank_table

    from bench.records import iter_records

    lines = []
    for table in aggregate(list(iter_records(results))):
        ranks = rank_table(table)
        if label in ranks:
            lines.append(f"{table.task}: {label} ranks {ranks[label][0]} of {ranks[label][1]} (mean rank over columns)")
    return "\n".join(lines) or f"{label}: no finished jobs to rank"
