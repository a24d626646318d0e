"""`unlearn-bench evaluate`: judge weights without unlearning — a model unlearned elsewhere, or the
artifacts a `run --save-models` kept — with the same metrics, records and leaderboard as a job.

No method code runs here: weights are data (safetensors, or torch.load with weights_only), and the
task, its Original and its judges are built in this process, as in a job's evaluation stage.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from bench.core.errors import ConfigError
from bench.core.log import get_logger
from bench.runner.artifacts import (
    ArtifactError,
    apply_state_dict,
    check_manifest,
    load_state_dict,
    read_manifest,
    weights_digest,
)
from bench.runner.job import Judging, base_record, failure, pick_device
from bench.runner.plan import JobSpec
from bench.runner.plugins import builtin_names, check_name_format
from bench.runner.records import scan_records, write_record
from tasks.base import TASKS

log = get_logger("evaluate")
EXTERNAL = "external"


def external_spec(task_name: str, options: dict, target: str, weights_sha: str, label: str, seed: int) -> JobSpec:
    """The job an external model stands for; its weights' digest is part of the setting."""
    check_name_format(label, "--label")
    if label in builtin_names() or label == EXTERNAL:
        raise ConfigError(f"--label {label!r} is a built-in method's name; give the external model a label of its own")
    task = TASKS.get(task_name).make(options)
    task.validate_target(target)
    given = {**task.given_checkpoints(), "unlearned": weights_sha}
    return JobSpec(EXTERNAL, task_name, dict(options), str(target), EXTERNAL, label, {}, int(seed), {}, None, EXTERNAL, given)


def judge_weights(spec: JobSpec, state: dict, where: str, device=None, fast_paths=None, manifest: dict | None = None) -> dict:
    """Evaluate `state` (all or part of the task's UNet) against the task's Original: the record's fields."""
    task = TASKS.get(spec.task).make(spec.task_options)
    if manifest is not None:
        check_manifest(manifest, spec.task, task.checkpoints(), where)
    judged = Judging(spec, task, device or pick_device(), fast_paths)
    replaced = apply_state_dict(judged.inst.model.denoiser, state, where)
    record = judged.evaluate()
    record["evaluated_tensors"] = replaced
    return record


def evaluate_external(weights: str, task_name: str, target: str, label: str, seeds: list[int], out: str,
                      options: dict | None = None, device=None, fast_paths=None) -> list[dict]:
    """One record per seed for an external model (the seed moves only what the task draws with it)."""
    state, fmt = load_state_dict(weights)
    digest = weights_digest(state)
    records = []
    for seed in seeds:
        spec = external_spec(task_name, options or {}, target, digest, label, seed)
        record = base_record(spec)
        t0 = time.perf_counter()
        try:
            record.update(judge_weights(spec, state, str(weights), device, fast_paths))
            record.update({"method_name": EXTERNAL, "hparams_resolved": {},
                           "external": {"source": str(Path(weights).expanduser().resolve()), "format": fmt, "sha256": digest}})
        except Exception as exc:  # noqa: BLE001 - one failed record, the others go on
            record.update(failure(exc, where="evaluate"))
        record["wall_seconds"] = round(time.perf_counter() - t0, 3)
        write_record(out, record)
        records.append(record)
    ensure_original(out, task_name, options or {}, target, seeds[0], fast_paths)
    return records


def ensure_original(out: str, task_name: str, options: dict, target: str, seed: int, fast_paths=None) -> None:
    """A row is scored against Original's record on the same task options and target: run that
    job (the built-in `original`, in a method process like every job) when `out` has none."""
    from bench.runner.job import run_job

    have, _ = scan_records(out)
    if any(r.ok and r.label == "original" and r.task == task_name and r.target == str(target)
           and r.raw.get("task_options") == options for r in have):
        return
    task = TASKS.get(task_name).make(options)
    spec = JobSpec(EXTERNAL, task_name, dict(options), str(target), "original", "original", {}, int(seed), {}, None, "given",
                   task.given_checkpoints())
    log.info(f"evaluate: no Original record for {task_name} target {target} in {out}: running it to score against")
    rec = run_job(spec, out, fast_paths=fast_paths)
    if rec["status"] != "ok":
        log.warning(f"evaluate: the Original job failed ({rec['error']}); the rows stay unscored")


def reevaluate(results: str, out: str, device=None, fast_paths=None) -> list[dict]:
    """Every vouched `ok` record under `results` with a saved artifact, evaluated again from the
    artifact into `out` (same job ids; its unlearning fields copied): e.g. after a metric was added."""
    records, _ = scan_records(results)
    todo = [r for r in records if r.ok and isinstance(r.raw.get("artifact"), dict)]
    if not todo:
        raise ConfigError(f"{results} holds no record with a saved model (run with --save-models first)")
    new = []
    for old in todo:
        spec = JobSpec(**{k: old.raw[k] for k in JobSpec.__dataclass_fields__ if k in old.raw})
        record = {**base_record(spec)}
        t0 = time.perf_counter()
        where = f"artifact of {old.job_id}"
        try:
            path = Path(results) / old.raw["artifact"]["path"]
            manifest = read_manifest(path)
            if manifest is None:
                raise ArtifactError(f"{where}: no manifest.json in {path}")
            state, _ = load_state_dict(path)
            if weights_digest(state) != old.raw["artifact"].get("sha256"):
                raise ArtifactError(f"{where}: its weights are not those its record names (altered since the job)")
            record.update(judge_weights(spec, state, where, device, fast_paths, manifest))
            unlearning = {k: old.raw[k] for k in ("method_name", "hparams_resolved", "method_stats", "method_sandbox",
                                                  "method_confinement", "method_source", "artifact") if k in old.raw}
            record.update(unlearning)
            record["cost"] = {**{k: v for k, v in (old.raw.get("cost") or {}).items() if not k.startswith(("eval", "metric"))
                                 and k != "images_generated_eval"}, **record["cost"]}
            record["reevaluated"] = {"from": str(Path(results).resolve() / "records" / f"{old.job_id}.json"),
                                     "record_sha256": hashlib.sha256(json.dumps(old.raw, sort_keys=True, default=str).encode()).hexdigest()}
        except Exception as exc:  # noqa: BLE001
            record.update(failure(exc, where="evaluate"))
        record["wall_seconds"] = round(time.perf_counter() - t0, 3)
        write_record(out, record)
        new.append(record)
    return new

