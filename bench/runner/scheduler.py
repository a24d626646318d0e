"""Ray scheduling: each job a remote task, one GPU per job when there are GPUs.

The driver owns the results: a worker returns its record and the driver writes it (atomically)
into its own `--out` the moment it arrives, so nothing depends on a disk shared with the workers;
a worker that dies gets a 'failed' record from the driver. Method files travel with the job by
content (bench.runner.plugins.MethodSource), never by path. Without an address the run starts its own
local Ray instance (`address="local"`), even when `ray start` or RAY_ADDRESS names another.

Placement: a job reserves `cpus_per_job` CPUs and sets torch's threads to exactly what Ray
assigned it, so concurrent jobs × threads never exceed the cores Ray was given. Workers are
reused across jobs (`max_calls=0`, also for GPU tasks, where Ray's default is one task per
process), so the per-process model cache (bench/core/adapters/model_cache.py) loads each base
checkpoint once per worker; jobs are submitted grouped by task to make those hits likely.
"""
from __future__ import annotations

import json
import os
import sys
import time
from typing import Callable

from tqdm import tqdm

from bench.core.fast import ENV_VAR as FAST_PATHS_ENV
from bench.runner.chains import keeps_model, with_predecessors
from bench.runner.job import base_record, failure, run_job
from bench.runner.plan import JobSpec
from bench.runner.records import finished_ok, write_record
from bench.runner.timeout import timeout_message


def pending_jobs(jobs: list[JobSpec], out_dir) -> list[JobSpec]:
    """Resume: a job whose record says 'ok' is not run again (failed ones are retried), unless a later
    step of its sequence must run and its kept model is gone (bench/runner/chains.py)."""
    return with_predecessors([j for j in jobs if not finished_ok(out_dir, j.job_id)], jobs, out_dir)


def method_sources(jobs: list[JobSpec]) -> dict:
    """The file methods of these jobs, read here on the driver (ref -> MethodSource)."""
    from bench.runner.plugins import is_file_reference, read_method_source

    return {j.method: read_method_source(j.method) for j in jobs if is_file_reference(j.method)}


def models_root(out_dir, save_models: bool) -> str | None:
    """Where `run --save-models` (and every sequence step) keeps each job's artifact (RESULTS/models/<job id>/), or None."""
    from bench.runner.artifacts import MODELS_DIR

    return os.path.join(str(out_dir), MODELS_DIR) if save_models else None


def previous_failed(spec: JobSpec, error) -> str:
    """The one-line error of a chain step that cannot start because the step before it failed."""
    return f"sequence step {spec.step + 1} of {' → '.join(spec.sequence)} not run: its previous step ({spec.previous().job_id}) failed: {error}"


def run_local(jobs: list[JobSpec], out_dir, progress: bool = True, fast_paths=None, sources=None, save_models: bool = False) -> list[dict]:
    """In-process, one job after another (debugging; `--local`)."""
    sources = method_sources(jobs) if sources is None else sources
    records = []
    for spec in tqdm(jobs, desc="jobs", unit="job", disable=not progress, file=sys.stderr):
        models_dir = models_root(out_dir, save_models or keeps_model(spec))  # a chain's next step starts from this one's model
        records.append(run_job(spec, out_dir, fast_paths=fast_paths, sources=sources, models_dir=models_dir))
    return records


def auto_cpus_per_job(total_cpus: float, gpus: float, n_jobs: int) -> int:
    """CPUs per job so that the jobs that can run at once use the cores without oversubscribing them.

    GPU clusters: one job per GPU, each with an equal share of the cores. CPU only: one core per
    job when there are more jobs than cores, else the cores split between the jobs."""
    cores = max(int(total_cpus), 1)
    if gpus >= 1:
        return max(cores // int(gpus), 1)
    return max(cores // max(min(n_jobs, cores), 1), 1)


def grouped_by_model(jobs: list[JobSpec]) -> list[JobSpec]:
    """Stable order with jobs of one task (hence one base model) together: warm worker caches."""
    return sorted(jobs, key=lambda j: (j.task, json.dumps(j.task_options, sort_keys=True, default=str)))


def _ray_job(spec: JobSpec, sources: dict, fast_paths=None, models_dir=None, after: dict | None = None, results_dir=None) -> dict:
    """On a worker: run the job and return its record; the worker writes no record (with
    `--save-models`, the artifact into `models_dir`: on a multi-node cluster, a shared filesystem).
    `after`: a chain's previous step's record (Ray runs this job only once that one has finished);
    `results_dir`: the driver's, which the method's process may not read (on the driver's machine)."""
    import ray

    if after is not None and after.get("status") != "ok":
        return {**base_record(spec), "status": "failed", "error_type": "SequenceStepFailed", "failed_in": "job",
                "error": previous_failed(spec, after.get("error")), "wall_seconds": 0.0}

    cpus = int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)) or 1
    return run_job(spec, None, threads=cpus, fast_paths=fast_paths, sources=sources, end_stuck_process=True, models_dir=models_dir,
                   results_dir=results_dir)


def run_ray(
    jobs: list[JobSpec],
    out_dir,
    address: str | None = None,
    cpus_per_job: int | None = 1,
    progress: bool = True,
    on_record: Callable[[dict], None] | None = None,
    fast_paths=None,
    save_models: bool = False,
) -> list[dict]:
    """`cpus_per_job` None or ≤ 0: `auto_cpus_per_job`. `fast_paths`: run options for every job
    (bench/core/fast.py; default: the driver's UNLEARN_BENCH_FAST_PATHS, shipped to workers on any cluster)."""
    import ray

    if fast_paths is None:
        fast_paths = os.environ.get(FAST_PATHS_ENV) or None

    out_dir = str(out_dir)
    sources = method_sources(jobs)
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:  # "local": never attach to a cluster found via `ray start` or RAY_ADDRESS
            ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        resources = ray.cluster_resources()
        gpus = resources.get("GPU", 0)
        if not cpus_per_job or cpus_per_job <= 0:
            cpus_per_job = auto_cpus_per_job(resources.get("CPU", 1), gpus, len(jobs))
        remote = ray.remote(num_cpus=cpus_per_job, num_gpus=1 if gpus else 0, max_retries=0, max_calls=0)(_ray_job)
        refs, submitted, ref_of = {}, {}, {}
        for spec in grouped_by_model(jobs):  # a stable order: a chain's steps stay in order
            mine = {spec.method: sources[spec.method]} if spec.method in sources else {}
            previous = spec.previous()
            after = ref_of.get(previous.job_id) if previous is not None else None  # Ray starts the step once it has finished
            ref = remote.remote(spec, mine, fast_paths, models_root(out_dir, save_models or keeps_model(spec)), after, out_dir)
            refs[ref], submitted[ref], ref_of[spec.job_id] = spec, time.monotonic(), ref
        records, errors = [], {}
        with tqdm(total=len(refs), desc="jobs", unit="job", disable=not progress, file=sys.stderr) as bar:
            waiting = list(refs)
            while waiting:
                done, waiting = ray.wait(waiting, num_returns=1)
                spec = refs[done[0]]
                try:
                    rec = ray.get(done[0])
                except Exception as exc:  # worker died (OOM, segfault, os._exit): record it, go on
                    rec = {**base_record(spec), **failure(exc, where="worker")}
                    previous = spec.previous()
                    if previous is not None and previous.job_id in errors:  # Ray passed on its predecessor's death
                        rec["error"] = previous_failed(spec, errors[previous.job_id])
                    elif spec.timeout_s and time.monotonic() - submitted[done[0]] >= spec.timeout_s:  # the watchdog ended it
                        rec["error"] = f"{timeout_message(spec.timeout_s)} (the job did not stop; its worker was ended)"
                rec["job_id"] = spec.job_id  # the driver names the file, whatever came back
                if rec.get("status") != "ok":
                    errors[spec.job_id] = rec.get("error")
                write_record(out_dir, rec)
                records.append(rec)
                if on_record:
                    on_record(rec)
                bar.set_postfix_str(f"{rec['task']}/{rec['label']}/{rec['target']}: {rec['status']}")
                bar.update(1)
        return records
    finally:
        if started_here:
            ray.shutdown()
