"""Ray placement: threads per job match the reserved CPUs, workers are reused and load a base model once."""
from collections import defaultdict

import pytest

from bench.runner.plan import load_suite, plan_jobs
from bench.runner.scheduler import auto_cpus_per_job, grouped_by_model, run_ray
from tests.helpers import write_suite


def test_auto_cpus_never_oversubscribes():
    for cores in (1, 2, 3, 8, 16, 64):
        for jobs in (1, 2, 5, 100):
            per_job = auto_cpus_per_job(cores, 0, jobs)
            assert per_job >= 1
            assert min(jobs, cores // per_job) * per_job <= cores  # jobs running at once × threads ≤ cores
            if jobs >= cores:
                assert per_job == 1
    assert auto_cpus_per_job(16, 1, 10) == 16  # one GPU: one job at a time gets every core
    assert auto_cpus_per_job(16, 8, 10) == 2
    assert auto_cpus_per_job(4, 8, 10) == 1


def test_grouped_by_model_is_stable_and_groups_tasks(tmp_path):
    suite = write_suite(tmp_path / "s.yaml", ["original", "finetune"], targets=("0", "1"))
    jobs = plan_jobs(load_suite(str(suite)))
    mixed = [jobs[i] for i in (3, 0, 2, 1)]
    assert grouped_by_model(mixed) == mixed  # one task: order unchanged
    assert sorted(j.job_id for j in grouped_by_model(jobs)) == sorted(j.job_id for j in jobs)


@pytest.mark.slow
def test_ray_jobs_use_their_cpus_and_reuse_loaded_models(tmp_path):
    import ray

    suite = write_suite(tmp_path / "s.yaml", ["original"], targets=("0", "1", "2"))
    jobs = plan_jobs(load_suite(str(suite)))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        (solo,) = run_ray(jobs[:1], tmp_path / "a", cpus_per_job=None, progress=False, fast_paths="autocast=bf16")
        rest = run_ray(jobs, tmp_path / "b", cpus_per_job=2, progress=False)
    finally:
        ray.shutdown()
    assert solo["status"] == "ok" and solo["hardware"]["torch_threads"] == 2  # auto: 1 job on 2 cores
    assert solo["fast_paths"]["autocast"] == "bf16"
    assert all(r["status"] == "ok" and r["hardware"]["torch_threads"] == 2 for r in rest)
    by_pid = defaultdict(list)
    for r in [solo, *rest]:
        by_pid[r["pid"]].append(r)
    assert len(by_pid) < 4  # workers are reused across jobs (Ray's GPU default would start one per job)
    for recs in by_pid.values():  # a reused worker loads the base model once, then hits its cache
        assert max(r["model_cache"]["misses"] for r in recs) == 1
        assert max(r["model_cache"]["hits"] for r in recs) == len(recs) - 1
