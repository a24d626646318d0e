"""Unlearning steps/s and peak memory of every registered method on one task (mini-digits by default).

Each method runs in a fresh spawned process (so peak RSS is its own, not what an earlier method
left behind) on the task's real base model and data, with the method's per-kind default
hyper-parameters, for `steps` optimiser steps (Budget.max_steps) under the given run options.
Step time is the median interval between consecutive `ctx.step` calls; setup is the time from
`unlearn()` to the first step (SalUn's saliency pass, RGD's remain gradient, ESD's sampling, ...).
"""
from __future__ import annotations

import multiprocessing as mp
import statistics
import time
import traceback


def _run_one(name: str, task_name: str, target: str, steps: int, threads: int, fast: dict | None, device: str) -> dict:
    import torch

    from bench.core.context import Budget, RunContext
    from bench.core.fast import FastPaths, apply_fast_paths
    from bench.runner.job import seed_everything
    from bench.runner.memory import PeakMemory
    from methods.base import METHODS, hparams_dict
    from tasks.base import TASKS

    torch.set_num_threads(threads)
    dev = torch.device(device)
    task = TASKS.get(task_name).make({})
    cls = METHODS.get(name)
    if task.kind not in cls.task_kinds:
        return {"method": name, "skipped": f"not for {task.kind} tasks"}
    hparams = cls.default_hparams(task.kind)
    seed_everything(0)

    class TimedContext(RunContext):
        def step(self, loss, **parts):
            super().step(loss, **parts)
            stamps.append(time.perf_counter())

    stamps: list[float] = []
    ctx = TimedContext(device=dev, seed=0, task_kind=task.kind)
    inst = task.build(target, ctx)
    ctx.num_classes = inst.evaluation.num_classes
    fp = FastPaths.resolve(dev, fast)
    apply_fast_paths(inst.model, fp)
    method = cls(hparams)
    with PeakMemory() as mem:
        rss0 = mem.peak_host_mb
        t0 = time.perf_counter()
        method.unlearn(inst.model, inst.forget, inst.remain, Budget(max_steps=steps), ctx)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        total = time.perf_counter() - t0
    intervals = [b - a for a, b in zip(stamps, stamps[1:])]
    hp = hparams_dict(hparams)
    return {
        "method": name, "task": task_name, "steps": ctx.steps_done, "fast_paths": fp.to_dict(),
        "batch": {k: v for k, v in hp.items() if "batch" in k},
        "setup_s": (stamps[0] - t0) if stamps else total,
        "step_s": statistics.median(intervals) if intervals else (total if stamps else None),
        "total_s": total, "peak_host_mb": mem.peak_host_mb, "host_mb_at_start": rss0,
        "peak_gpu_mb": mem.peak_gpu_mb, "images_generated": ctx.images_generated,
    }


def _run_guarded(*args) -> dict:
    try:
        return _run_one(*args)
    except Exception as exc:  # noqa: BLE001 - one broken method must not hide the others' figures
        return {"method": args[0], "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-2000:]}


def registered_methods() -> list[str]:
    from methods.base import METHODS

    return METHODS.names()


def bench_methods(
    names: list[str] | None = None,
    task: str = "mini-digits-class",
    target: str = "0",
    steps: int = 10,
    threads: int = 1,
    fast: dict | None = None,
    device: str = "cpu",
    isolate: bool = True,
) -> list[dict]:
    """One row per method; methods not registered (yet) get a `skipped` row naming them."""
    known = registered_methods()
    wanted = names or known
    rows = []
    ctx = mp.get_context("spawn")
    for name in wanted:
        if name not in known:
            rows.append({"method": name, "skipped": "not registered"})
            continue
        args = (name, task, target, steps, threads, fast, device)
        if isolate:
            with ctx.Pool(1, maxtasksperchild=1) as pool:
                rows.append(pool.apply(_run_guarded, args))
        else:
            rows.append(_run_guarded(*args))
    return rows
