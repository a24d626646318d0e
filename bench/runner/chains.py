"""Sequential unlearning: a chain of jobs, each step unlearning its target from the step before's model.

A suite's `sequences` (bench/runner/plan.py) gives orders of targets; every row runs each order as
one job per step (JobSpec.sequence). Step 0 starts from Original; step k from the unlearned model
step k−1 kept as its artifact (RESULTS/models/<job id>/, bench/runner/artifacts.py), which the
harness wrote from the weights it judged — the method's process only reads it. Every step is judged
against the true Original on its own target, with the earlier targets left out of the keep sets and
their UA measured again (metrics/sequence.py). On a cluster of several machines the results
directory must be shared, as for `--save-models`: a step may run on another machine than its
predecessor.
"""
from __future__ import annotations

from pathlib import Path

from bench.core.errors import BenchError
from bench.runner.artifacts import artifact_dir, load_state_dict, read_manifest, weights_digest
from bench.runner.plan import JobSpec


def keeps_model(spec: JobSpec) -> bool:
    """A chain's steps keep their model: the next step starts from it (and `evaluate` can re-judge it)."""
    return bool(spec.sequence)


def start_from(spec: JobSpec, models_dir) -> str | None:
    """The artifact this step starts from (its predecessor's), checked against its manifest; None for
    ordinary jobs and first steps. A missing or altered artifact is one BenchError naming the step."""
    previous = spec.previous()
    if previous is None:
        return None
    where = f"sequence step {spec.step + 1} of {' → '.join(spec.sequence)}"
    if models_dir is None:
        raise BenchError(f"{where}: no models directory to find the previous step's model in")
    path = Path(models_dir) / previous.job_id
    manifest = read_manifest(path)
    if manifest is None:
        raise BenchError(f"{where}: the previous step's model ({previous.job_id}) is missing (that step failed or its artifact was removed)")
    if manifest.get("job_id") != previous.job_id:
        raise BenchError(f"{where}: {path} holds the model of {manifest.get('job_id')!r}, not of the previous step {previous.job_id!r}")
    state, _ = load_state_dict(path)
    if weights_digest(state) != manifest.get("weights_sha256"):
        raise BenchError(f"{where}: the previous step's model at {path} was altered after its job saved it")
    return str(path)


def has_model(spec: JobSpec, out_dir) -> bool:
    return read_manifest(artifact_dir(out_dir, spec.job_id)) is not None


def with_predecessors(pending: list[JobSpec], jobs: list[JobSpec], out_dir) -> list[JobSpec]:
    """Resume: a finished step whose successor must run again but whose model is gone runs again too
    (back to the last step whose model is kept, or the first); in the plan's order, which is the chain's."""
    todo = {j.job_id for j in pending}
    for spec in reversed(jobs):  # a successor before its predecessor: the need travels back along the chain
        previous = spec.previous()
        if spec.job_id in todo and previous is not None and not has_model(previous, out_dir):
            todo.add(previous.job_id)
    return [j for j in jobs if j.job_id in todo]
