"""Ray scheduling: each job a remote task, one GPU per job when there are GPUs.

Records are written by the worker as soon as a job ends, so a crash of the driver or of another
job never loses a finished record; a worker that dies gets a 'failed' record from the driver.
"""
from __future__ import annotations

import os
import sys
from typing import Callable

from tqdm import tqdm

from bench.job import base_record, failure, run_job
from bench.plan import JobSpec
from bench.records import finished_ok, write_record


def pending_jobs(jobs: list[JobSpec], out_dir) -> list[JobSpec]:
    """Resume: a job whose record says 'ok' is not run again (failed ones are retried)."""
    return [j for j in jobs if not finished_ok(out_dir, j.job_id)]


def run_local(jobs: list[JobSpec], out_dir, progress: bool = True) -> list[dict]:
    """In-process, one job after another (debugging; `--local`)."""
    records = []
    for spec in tqdm(jobs, desc="jobs", unit="job", disable=not progress, file=sys.stderr):
        records.append(run_job(spec, out_dir))
    return records


def _ray_job(spec: JobSpec, out_dir: str) -> dict:
    import ray

    cpus = int(ray.get_runtime_context().get_assigned_resources().get("CPU", 1)) or 1
    return run_job(spec, out_dir, threads=cpus)


def run_ray(
    jobs: list[JobSpec],
    out_dir,
    address: str | None = None,
    cpus_per_job: int = 1,
    progress: bool = True,
    on_record: Callable[[dict], None] | None = None,
) -> list[dict]:
    import ray

    out_dir = str(out_dir)
    started_here = not ray.is_initialized()
    if started_here:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        gpus = ray.cluster_resources().get("GPU", 0)
        remote = ray.remote(num_cpus=cpus_per_job, num_gpus=1 if gpus else 0, max_retries=0)(_ray_job)
        refs = {remote.remote(spec, out_dir): spec for spec in jobs}
        records = []
        with tqdm(total=len(refs), desc="jobs", unit="job", disable=not progress, file=sys.stderr) as bar:
            waiting = list(refs)
            while waiting:
                done, waiting = ray.wait(waiting, num_returns=1)
                spec = refs[done[0]]
                try:
                    rec = ray.get(done[0])
                except Exception as exc:  # worker died (OOM, segfault, os._exit): record it, go on
                    rec = {**base_record(spec), **failure(exc, where="worker")}
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
