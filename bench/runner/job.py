"""Running one job: unlearn (in the method's own process) -> weights -> evaluate (here), return a record (never raises)."""
from __future__ import annotations

import datetime as _dt
import gc
import math
import os
import shutil
import time
import traceback
from contextlib import nullcontext

import torch

from bench.core.adapters import model_cache
from bench.core.context import RunContext
from bench.core.errors import BenchError
from bench.core.fast import FastPaths, apply_fast_paths
from bench.core.instances import split_results
from bench.core.instances import to_record as instances_record
from bench.runner.artifacts import apply_state_dict, artifact_dir, load_state_dict
from bench.runner.chains import keeps_model, start_from
from bench.runner.memory import Timer
from bench.runner.method_code import CODE_HASH_CHARS, method_code_hash
from bench.runner.method_process import MethodProcessError, memory_cause, method_runner
from bench.runner.plan import PROTOCOL_VERSION, JobSpec
from bench.runner.provenance import git_revision, hardware, package_versions
from bench.runner.records import write_record
from bench.runner.sample_strip import sample_strip
from bench.runner.sandbox import summary as sandbox_summary
from bench.runner.steps import check_steps, weights_changed
from bench.runner.timeout import JobTimeout, time_limit, worker_watchdog
from bench.runner.unlearn_stage import UnlearnRequest, seed_everything
from methods.training import assert_finite_weights
from metrics.base import METRICS
from tasks.base import TASKS, build_instance, config_dict, prepare_instance


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def base_record(spec: JobSpec, shipped=None) -> dict:
    """The record's fields every outcome shares; `shipped`: the method file the driver shipped (a MethodSource), whose
    text (not a path on this machine) gives a submitted method's code hash."""
    return {
        "job_id": spec.job_id,
        "setting_hash": spec.setting_hash,
        **spec.to_dict(),
        "protocol_version": PROTOCOL_VERSION,
        # what a tuned point's provenance is compared with (stale marks)
        "method_code": shipped.sha256[:CODE_HASH_CHARS] if shipped is not None else method_code_hash(spec.method),
        "versions": package_versions(),
        "git": git_revision(),
        "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def evaluate(task, inst, original, ctx: RunContext) -> tuple[dict, dict, dict, dict]:
    """Every metric of the task on inst.model against the frozen original: (metrics, directions,
    per-instance values, seconds per metric)."""
    metrics, directions, instances, metric_seconds = {}, {}, {}, {}
    earlier = ("earlier-ua",) if inst.evaluation.earlier else ()  # a chain's later step: UA on the targets erased before
    for name in tuple(task.metrics) + earlier:
        metric = METRICS.get(name)()
        directions.update(metric.columns(inst))
        with Timer() as metric_timer:  # each metric's cost (e.g. the attack's) lands in cost, not in metrics
            numbers, per = split_results(metric.compute(inst, inst.model, original, ctx))
        metrics.update(numbers)
        instances.update(per)  # what each column averaged, per evaluation instance (bench/core/instances.py)
        metric_seconds[name] = round(metric_timer.seconds, 3)
    return metrics, directions, instances, metric_seconds


def load_weights(model, path: str, method_name: str) -> None:
    """The artifact into `model`'s denoiser: same keys and shapes, finite values, or a named error."""
    from safetensors.torch import load_file

    try:
        weights = load_file(path)
    except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
        raise MethodProcessError(f"method {method_name!r}: its weights file is unreadable: {type(exc).__name__}: {exc}") from None
    own = model.denoiser.state_dict()
    if weights.keys() != own.keys() or any(weights[k].shape != own[k].shape for k in own):
        raise MethodProcessError(f"method {method_name!r}: its weights do not fit the task's model (other parameter names or shapes)")
    model.denoiser.load_state_dict(weights)
    assert_finite_weights(model, method_name)


def unlearn_in_child(spec: JobSpec, device, fast_paths, sources, timeout_s, start: str | None = None, private=()):
    """Run the method stage in a fresh child process (bench/runner/method_process.py); `start`: the artifact a
    chain's later step starts from (bench/runner/chains.py); `private`: paths it may not read (the results directory)."""
    request = UnlearnRequest(spec, {k: v for k, v in (sources or {}).items() if k == spec.method}, str(device),
                             torch.get_num_threads(), fast_paths, start)
    return method_runner().unlearn(request, timeout_s, private)


def execute(spec: JobSpec, device: torch.device | None = None, fast_paths=None, sources=None, deadline: float | None = None,
            save_model_to=None, start: str | None = None, private=()) -> dict:
    """The job itself; raises on failure. The method runs in a child process (`unlearn_in_child`), this
    process evaluates the weights it hands back against an Original it builds itself.
    `fast_paths`: FastPaths, dict or "k=v,..." overrides; `sources`: method files shipped by the driver
    (bench.runner.plugins.MethodSource by reference); `deadline`: time.monotonic() by which the job ends;
    `save_model_to`: a directory to keep the unlearned model in, as an artifact (bench/runner/artifacts.py);
    `start`: a chain's later step, the artifact of the step before (bench/runner/chains.start_from);
    `private`: paths the method's process may not read (the results directory; bench/runner/sandbox.py)."""

    device = device or pick_device()
    task = TASKS.get(spec.task).make(spec.task_options)
    prepare_instance(task, spec.target, device, spec.erased)  # caches the method's process reads but may not write
    if torch.device(device).type == "cuda":  # the method's process gets the GPU memory this one is not using
        gc.collect()
        torch.cuda.empty_cache()
    remaining = None if deadline is None else max(deadline - time.monotonic(), 0.001)
    unlearned = unlearn_in_child(spec, device, fast_paths, sources, remaining, start, private)
    try:
        with Timer() as setup_timer:  # the price of judging in a process of its own: the task, its Original, the weights
            judged = Judging(spec, task, device, fast_paths)
            load_weights(judged.inst.model, unlearned.weights, unlearned.method_name)
    finally:
        shutil.rmtree(os.path.dirname(unlearned.weights), ignore_errors=True)
    check_steps(f"method {unlearned.method_name!r}", unlearned.steps, unlearned.optimizer_steps,
                weights_changed(judged.inst.model.denoiser, judged.starting_point(start).denoiser), spec.budget.get("max_steps"))
    with Timer() as save_timer:
        artifact = judged.save(save_model_to, {"method_name": unlearned.method_name}) if save_model_to else None
    record = judged.evaluate()
    record["cost"]["eval_setup_seconds"] = round(setup_timer.seconds, 3)  # not in eval_seconds
    if artifact is not None:
        record["cost"]["artifact_seconds"] = round(save_timer.seconds, 3)
    record["cost"] = {
        "unlearn_seconds": unlearned.unlearn_seconds,
        **record["cost"],
        "steps": unlearned.steps,
        "optimizer_steps": unlearned.optimizer_steps,  # counted by the harness in the method's process (steps.py)
        "step_seconds": unlearned.step_seconds,  # median time between the method's steps (no set-up)
        "peak_host_mem_mb": unlearned.peak_host_mb,
        "peak_gpu_mem_mb": unlearned.peak_gpu_mb,
        "images_generated_unlearning": unlearned.images_generated,
    }
    record.update({"method_name": unlearned.method_name, "hparams_resolved": unlearned.hparams_resolved,
                   "method_stats": unlearned.stats, "method_sandbox": unlearned.sandbox, "method_confinement": unlearned.confinement})
    if artifact is not None:
        record["artifact"] = artifact
    return record


class Judging:
    """The evaluation side of a job, for any weights: the task built here, its Original, the model the
    weights go into, and the record fields every evaluation has (a job's, an artifact's, an external model's)."""

    def __init__(self, spec: JobSpec, task, device, fast_paths=None):
        self.spec, self.task = spec, task
        seed_everything(spec.seed)
        self.ctx = RunContext(device=device, seed=spec.seed, task_kind=task.kind)
        self.inst = build_instance(task, spec.target, self.ctx, spec.erased)
        self.ctx.num_classes = self.inst.evaluation.num_classes
        self.fast = apply_fast_paths(self.inst.model, FastPaths.resolve(device, fast_paths)).fast_paths
        self.original = self.inst.model.frozen_copy()

    def starting_point(self, start: str | None):
        """The model the method started from: Original, or a chain's previous step (`start`, its artifact)."""
        if start is None:
            return self.original
        model = self.original.frozen_copy()
        apply_state_dict(model.denoiser, load_state_dict(start)[0], f"the previous step's model {start}")
        return model

    def save(self, dest, extra: dict) -> dict:
        """Keep the model being judged as an artifact at `dest`; the record's `artifact` entry."""
        from bench.runner.artifacts import save_artifact

        spec = self.spec
        manifest = {"task": spec.task, "task_options": spec.task_options, "target": spec.target, "seed": spec.seed,
                    "method": spec.method, "label": spec.label, "setting_hash": spec.setting_hash, "job_id": spec.job_id,
                    "base_checkpoints": self.task.checkpoints(), **({"sequence": list(spec.sequence)} if spec.sequence else {}),
                    **extra}
        entry = save_artifact(self.inst.model.denoiser, dest, manifest)
        return {"path": str(dest), **entry}

    def evaluate(self) -> dict:
        inst, task = self.inst, self.task
        inst.model.denoiser.eval()
        with Timer() as eval_timer:
            metrics, directions, instances, metric_seconds = evaluate(task, inst, self.original, self.ctx)
        bad = [c for c in directions if not math.isfinite(float(metrics.get(c, math.nan)))]
        if bad:  # an 'ok' record must carry a number for every column it declares
            raise BenchError(f"metric column(s) {', '.join(map(repr, bad))} came out missing or non-finite")
        return {
            "status": "ok",
            "task_kind": task.kind,
            "task_config": config_dict(task.config),
            "metrics": metrics,
            "directions": directions,
            "instances": instances_record(instances),
            "cost": {
                "eval_seconds": round(eval_timer.seconds, 3),
                "eval_sample_seconds": round(self.ctx.eval_sample_seconds, 3),  # of eval_seconds: generating the judged images
                "metric_seconds": metric_seconds,  # eval_seconds per metric
                "images_generated_eval": self.ctx.images_generated,
            },
            "checkpoints": task.checkpoints(),
            "hardware": hardware(),
            "fast_paths": self.fast.to_dict(),
            "samples": sample_strip(inst, inst.model),  # a few eval images for the leaderboard's sample grid
        }


def run_job(spec: JobSpec, out_dir=None, threads: int | None = None, fast_paths=None, sources=None, end_stuck_process: bool = False,
            models_dir=None, results_dir=None) -> dict:
    """Run a job and return its record (written to `out_dir` when given: in-process runs; on Ray
    the driver writes what it receives); failures become a 'failed' record naming the cause.

    `threads`: torch intra-op threads (the CPUs the scheduler reserved for this job);
    `end_stuck_process`: a Ray worker ends itself when the job ignores its time limit;
    `models_dir`: keep the unlearned model as an artifact in models_dir/<job id> (`run --save-models`);
    `results_dir`: the driver's results directory (default `out_dir`), which the method's process may not read."""

    if threads:
        torch.set_num_threads(threads)
    source = (sources or {}).get(spec.method)
    record = base_record(spec, source)
    t0 = time.perf_counter()
    try:
        if source is not None:
            record["method_source"] = {"path": source.path, "sha256": source.sha256}
        deadline = time.monotonic() + spec.timeout_s if spec.timeout_s else None
        if keeps_model(spec) and models_dir is None:
            raise BenchError("a sequence step needs a models directory to keep its model in (the scheduler gives one)")
        with time_limit(spec.timeout_s), (worker_watchdog(spec.timeout_s) if end_stuck_process else nullcontext()):
            save_to = os.path.join(models_dir, spec.job_id) if models_dir else None  # models_dir: scheduler.models_root
            start = start_from(spec, models_dir)  # a chain's later step: the previous step's model, checked
            private = [str(d) for d in (results_dir or out_dir,) if d]
            record.update(execute(spec, fast_paths=fast_paths, sources=sources, deadline=deadline, save_model_to=save_to, start=start,
                                  private=private))
            if "artifact" in record:  # named relative to the results directory (bench/runner/artifacts.py)
                record["artifact"]["path"] = str(artifact_dir("", spec.job_id))
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
    """A 'failed' record's fields: the cause in one line (a method process's own cause and traceback)."""
    if isinstance(exc, MethodProcessError):
        out = {"status": "failed", "error": str(exc), "error_type": exc.error_type, "failed_in": "method process",
               "traceback": exc.traceback_text}
        if exc.confinement:  # what confined the process, as it reported before it failed
            out.update(method_sandbox=sandbox_summary(exc.confinement), method_confinement=exc.confinement)
        return out
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    message = str(exc) if isinstance(exc, (BenchError, JobTimeout)) else memory_cause(exc) or f"{type(exc).__name__}: {exc}"
    return {
        "status": "failed",
        "error": " ".join(message.split()),
        "error_type": type(exc).__name__,
        "failed_in": where,
        "traceback": "".join(tb)[-4000:],
    }
