"""The run record: one JSON object per job, the suite's results as data. `RunRecord` is its typed
reading and `parse_record` the one loader: every reader (leaderboard, resume, tune, validate,
submit) goes through it, so a malformed record fails in one place with one message, and the
spellings of older versions (hparams / task_options before hparams_resolved / task_config; no
schema_version) are normalised here and nowhere else.

Versions: 1 = records written before the field existed; 2 = adds `schema_version`; 3 = adds `instances`
(per-instance values of the metric columns, bench/core/instances.py). Optional fields that came later
without a version of their own: `method_confinement` (issue 35: per part — writes, reads, network,
leftovers, memory — what confined the method's process, "none: why" where nothing did; absent before,
read as {}, i.e. unknown) beside `method_sandbox`, its one-line summary (before: what confined writes)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping

from bench.core.instances import PerInstance, from_record

SCHEMA_VERSION = 3
REQUIRED_KEYS = ("job_id", "status", "task", "label", "method", "setting_hash", "target", "seed")


class RecordError(ValueError):
    """A record that no tool can use; the message says why."""


@dataclass(frozen=True)
class Cost:
    unlearn_seconds: float | None = None
    eval_seconds: float | None = None
    eval_sample_seconds: float | None = None  # of eval_seconds: generating the shared evaluation images (v3; the attack's own are in its metric_seconds)
    metric_seconds: dict[str, float] = field(default_factory=dict)  # eval seconds per metric
    steps: int | None = None
    optimizer_steps: int | None = None
    step_seconds: float | None = None  # median time between the method's steps, set-up excluded (absent before issue 37)
    peak_host_mem_mb: float | None = None
    peak_gpu_mem_mb: float | None = None
    images_generated_unlearning: int | None = None
    images_generated_eval: int | None = None

    @property
    def peak_mem_mb(self) -> float | None:
        """GPU peak when the job ran on a GPU, else the host's."""
        return self.peak_gpu_mem_mb if self.peak_gpu_mem_mb is not None else self.peak_host_mem_mb


@dataclass(frozen=True)
class RunRecord:
    job_id: str
    status: str  # "ok" | "failed"
    task: str
    label: str  # the row's name (a method under a given setting)
    method: str
    setting_hash: str
    target: str
    seed: int
    schema_version: int = 1
    suite: str = "?"
    task_kind: str | None = None
    task_config: dict[str, Any] = field(default_factory=dict)  # the task's resolved options
    hparams: dict[str, Any] = field(default_factory=dict)  # as given by the suite
    hparams_resolved: dict[str, Any] = field(default_factory=dict)  # after the method's defaults
    hparams_source: str | None = None  # "tuned (...)" | "reference" | "given"; absent before v0.2
    budget: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    directions: dict[str, str] = field(default_factory=dict)
    instances: dict[str, PerInstance] = field(default_factory=dict)  # column -> what its value averaged (v3)
    cost: Cost = field(default_factory=Cost)
    error: str | None = None
    samples: dict | None = None  # the sample strip (base64 PNG and its layout)
    versions: dict[str, str] = field(default_factory=dict)
    git: str = "unknown"
    started: str | None = None
    # sequential unlearning (a suite's `sequences`): the full order of targets this job's chain erases, this job's
    # target among them; () for an ordinary job (docs/PROTOCOL.md, "Sequential unlearning")
    sequence: tuple[str, ...] = ()
    rehearsal: bool = False  # `run --rehearse`: tiny stand-in models and data, a few steps and images; never a result
    # what confined the method's process, per part (bench/runner/sandbox.py: ASPECTS); {} in records written before it existed
    method_confinement: dict[str, str] = field(default_factory=dict)
    protocol_version: str | None = None  # PROTOCOL_VERSION the job ran under (absent before issue 38)
    method_code: str | None = None  # the method's code hash (bench/runner/method_code.py; absent before issue 38)
    tuned_under: dict[str, Any] = field(default_factory=dict)  # a tuned row's selection provenance (JobSpec.tuned_under)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)  # the JSON object as read

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def sequence_step(self) -> int | None:
        """0-based position of this job's target in its sequence; None for an ordinary job."""
        return self.sequence.index(self.target) if self.sequence else None

    def __getitem__(self, key: str) -> Any:
        """The record's JSON by key, for the diagnostic fields without a typed attribute (method_stats,
        hardware, traceback, ...); typed fields are read as attributes."""
        return self.raw[key]

    def __contains__(self, key: str) -> bool:
        return key in self.raw

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)


def _obj(rec: Mapping, key: str) -> dict:
    value = rec.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecordError(f"{key!r} is not an object")
    return value


_COST_FIELDS = frozenset(Cost.__dataclass_fields__)


def parse_record(obj: Any) -> RunRecord:
    """A RunRecord from a decoded JSON object (or an existing RunRecord); RecordError says what is wrong."""
    if isinstance(obj, RunRecord):
        return obj
    if not isinstance(obj, dict):
        raise RecordError(f"a JSON {type(obj).__name__}, not a record object")
    lacking = [k for k in REQUIRED_KEYS if k not in obj]
    if lacking:
        raise RecordError(f"missing key(s) {', '.join(lacking)}")
    metrics, cost = _obj(obj, "metrics"), _obj(obj, "cost")
    version = obj.get("schema_version", 1)
    if not isinstance(version, int) or version > SCHEMA_VERSION:
        raise RecordError(f"schema_version {version!r} is newer than this unlearn-bench reads ({SCHEMA_VERSION}); upgrade it")
    hparams = _obj(obj, "hparams")
    try:
        instances = from_record(obj.get("instances"))
    except ValueError as exc:
        raise RecordError(str(exc)) from exc
    sequence = obj.get("sequence") or []
    if not isinstance(sequence, list) or not all(isinstance(t, str) for t in sequence) or (
            sequence and (str(obj["target"]) not in sequence or len(set(sequence)) != len(sequence))):
        raise RecordError("'sequence' must be a list of distinct target names holding the record's target")
    if obj["status"] == "ok":  # an ok record is only usable with a finite value for every column it declares
        unusable = sorted({c for c, v in metrics.items() if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)}
                          | (set(_obj(obj, "directions")) - set(metrics)))
        if not metrics or unusable:
            raise RecordError(f"an 'ok' record with {'no metrics' if not metrics else 'missing or non-finite ' + ', '.join(map(repr, unusable))}"
                              " (its job re-runs)")
    for col, per in instances.items():  # the instances must be what the column averaged
        value = metrics.get(col)
        if not isinstance(value, (int, float)) or not abs(per.value - value) <= 1e-5 * max(1.0, abs(value)):
            raise RecordError(f"instances of column {col!r} reduce to {per.value!r}, not to its value {value!r}")
    return RunRecord(
        job_id=str(obj["job_id"]), status=str(obj["status"]), task=str(obj["task"]), label=str(obj["label"]),
        method=str(obj["method"]), setting_hash=str(obj["setting_hash"]), target=str(obj["target"]), seed=obj["seed"],
        schema_version=version,
        suite=str(obj.get("suite", "?")),
        task_kind=obj.get("task_kind"),
        task_config=_obj(obj, "task_config") if "task_config" in obj else _obj(obj, "task_options"),
        hparams=hparams,
        hparams_resolved=_obj(obj, "hparams_resolved") if "hparams_resolved" in obj else hparams,
        hparams_source=obj.get("hparams_source"),
        budget=_obj(obj, "budget"),
        metrics=metrics,
        directions=_obj(obj, "directions"),
        instances=instances,
        cost=Cost(**{k: v for k, v in cost.items() if k in _COST_FIELDS}),
        error=obj.get("error"),
        samples=obj.get("samples") if isinstance(obj.get("samples"), dict) else None,
        versions=_obj(obj, "versions"),
        git=str(obj.get("git", "unknown")),
        started=obj.get("started"),
        sequence=tuple(sequence),
        rehearsal=obj.get("rehearsal") is True,
        method_confinement=_obj(obj, "method_confinement"),
        protocol_version=None if obj.get("protocol_version") is None else str(obj["protocol_version"]),
        method_code=None if obj.get("method_code") is None else str(obj["method_code"]),
        tuned_under=_obj(obj, "tuned_under"),
        raw=obj,
    )
