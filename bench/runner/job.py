"""Running one job: build the task, unlearn, evaluate, return a record (never raises)."""
from __future__ import annotations

import datetime as _dt
import gc
import os
import random
import time
import traceback
from contextlib import nullcontext

import numpy as np
import torch

from bench.core.adapters import model_cache
from bench.core.context import Budget, RunContext
from bench.core.errors import BenchError
from bench.core.fast import FastPaths, apply_fast_paths
from bench.core.instances import split_results
from bench.core.instances import to_record as instances_record
from bench.runner.memory import PeakMemory, Timer
from bench.runner.plan import JobSpec
from bench.runner.plugins import resolve_method
from bench.runner.provenance import git_revision, hardware, package_versions
from bench.runner.records import write_record
from bench.runner.sample_strip import sample_strip
from bench.runner.steps import check_steps, count_optimizer_steps, weights_changed
from bench.runner.timeout import JobTimeout, time_limit, worker_watchdog
from methods.base import hparams_dict
from methods.training import assert_finite_weights
from metrics.base import METRICS
from tasks.base import TASKS, config_dict


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def base_record(spec: JobSpec) -> dict:
    return {
        "job_id": spec.job_id,
        "setting_hash": spec.setting_hash,
        **spec.to_dict(),
        "versions": package_versions(),
        "git": git_revision(),
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def evaluate(task, inst, original, ctx: RunContext) -> tuple[dict, dict, dict, dict]:
    """Every metric of the task on inst.model against the frozen original: (metrics, directions,
    per-instance values, seconds per metric)."""
    metrics, directions, instances, metric_seconds = {}, {}, {}, {}
    for name in task.metrics:
        metric = METRICS.get(name)()
        directions.update(metric.columns(inst))
        with Timer() as metric_timer:  # each metric's cost (e.g. the attack's) lands in cost, not in metrics
            numbers, per = split_results(metric.compute(inst, inst.model, original, ctx))
        metrics.update(numbers)
        instances.update(per)  # what each column averaged, per evaluation instance (bench/core/instances.py)
        metric_seconds[name] = round(metric_timer.seconds, 3)
    return metrics, directions, instances, metric_seconds


def execute(spec: JobSpec, device: torch.device | None = None, fast_paths=None, sources=None) -> dict:
    """The job itself; raises on failure. `fast_paths`: FastPaths, dict or "k=v,..." overrides;
    `sources`: method files shipped by the driver (bench.runner.plugins.MethodSource by reference)."""

    device = device or pick_device()
    task_cls = TASKS.get(spec.task)
    task = task_cls.make(spec.task_options)
    method_cls = resolve_method(spec.method, sources)
    hparams = method_cls.default_hparams(task.kind, **spec.hparams)
    seed_everything(spec.seed)
    ctx = RunContext(device=device, seed=spec.seed, task_kind=task.kind)
    inst = task.build(spec.target, ctx)
    ctx.num_classes = inst.evaluation.num_classes
    fast = apply_fast_paths(inst.model, FastPaths.resolve(device, fast_paths)).fast_paths  # the one place
    original = inst.model.frozen_copy()
    method = method_cls(hparams)
    with count_optimizer_steps() as counted, PeakMemory() as mem, Timer() as timer:
        stats = method.unlearn(inst.model, inst.forget, inst.remain, Budget(**spec.budget), ctx) or {}
    assert_finite_weights(inst.model, spec.method)
    check_steps(f"method {method_cls.name!r}", ctx.steps_done, counted.optimizer_steps,
                weights_changed(inst.model.denoiser, original.denoiser), spec.budget.get("max_steps"))
    inst.model.denoiser.eval()
    images_for_unlearning = ctx.images_generated
    with Timer() as eval_timer:
        metrics, directions, instances, metric_seconds = evaluate(task, inst, original, ctx)
    return {
        "status": "ok",
        "task_kind": task.kind,
        "task_config": config_dict(task.config),
        "method_name": method_cls.name,
        "hparams_resolved": hparams_dict(hparams),
        "metrics": metrics,
        "directions": directions,
        "instances": instances_record(instances),
        "cost": {
            "unlearn_seconds": round(timer.seconds, 3),
            "eval_seconds": round(eval_timer.seconds, 3),
            "eval_sample_seconds": round(ctx.eval_sample_seconds, 3),  # of eval_seconds: generating the judged images
            "metric_seconds": metric_seconds,  # eval_seconds per metric
            "steps": ctx.steps_done,
            "optimizer_steps": counted.optimizer_steps,  # counted by the harness (bench/runner/steps.py)
            "peak_host_mem_mb": round(mem.peak_host_mb, 1),
            "peak_gpu_mem_mb": None if mem.peak_gpu_mb is None else round(mem.peak_gpu_mb, 1),
            "images_generated_unlearning": images_for_unlearning,
            "images_generated_eval": ctx.images_generated - images_for_unlearning,
        },
        "method_stats": {k: v for k, v in stats.items() if isinstance(v, (int, float, str, bool, list)) or v is None},
        "checkpoints": task.checkpoints(),
        "hardware": hardware(),
        "fast_paths": fast.to_dict(),
        "samples": sample_strip(inst, inst.model),  # a few eval images for the leaderboard's sample grid
    }


def run_job(spec: JobSpec, out_dir=None, threads: int | None = None, fast_paths=None, sources=None, end_stuck_process: bool = False) -> dict:
    """Run a job and return its record (written to `out_dir` when given: in-process runs; on Ray
    the driver writes what it receives); failures become a 'failed' record naming the cause.

    `threads`: torch intra-op threads (the CPUs the scheduler reserved for this job);
    `end_stuck_process`: a Ray worker ends itself when the job ignores its time limit."""

    if threads:
        torch.set_num_threads(threads)
    record = base_record(spec)
    t0 = time.perf_counter()
    try:
        source = (sources or {}).get(spec.method)
        if source is not None:
            record["method_source"] = {"path": source.path, "sha256": source.sha256}
        with time_limit(spec.timeout_s), (worker_watchdog(spec.timeout_s) if end_stuck_process else nullcontext()):
            record.update(execute(spec, fast_paths=fast_paths, sources=sources))
    except (Exception, JobTimeout) as exc:  # the job fails, the suite goes on
        record.update(failure(exc))
    record["wall_seconds"] = round(time.perf_counter() - t0, 3)
    record["pid"] = os.getpid()
    record["model_cache"] = model_cache.stats()  # hits > 0: this worker reused a loaded base model
    gc.collect()  # free this job's models before the worker takes the next job
    if out_dir is not None:
        write_record(out_dir, record)
    return record


def failure(exc: BaseException, where: str = "job") -> dict:
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return {
        "status": "failed",
        "error": str(exc) if isinstance(exc, (BenchError, JobTimeout)) else f"{type(exc).__name__}: {exc}",
        "error_type": type(exc).__name__,
        "failed_in": where,
        "traceback": "".join(tb)[-4000:],
    }
