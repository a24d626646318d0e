"""Paired, hierarchical bootstrap: intervals for a row's mean and for the difference of two rows.

Every method on a task is judged on the same jobs (target × seed) and, inside a job, on the same
evaluation instances (prompts or classes with fixed noise seeds; bench/core/instances.py). So one
resample is drawn per task and shared by every row:

1. the jobs: K job keys (task options, target, seed) drawn with replacement from the task's keys;
2. inside each job key, each evaluation set's instances drawn with replacement (the same draw for
   every row and for Original on that key, so a column's resampled value is paired across methods).

A row's statistic is recomputed on every resample (a metric column: its per-instance mean or sum; the
score: from the resampled forget and keep columns against Original's, resampled with the same
draw), then averaged over the drawn jobs the row has. The 95% percentile interval of those B values
is the row's interval; the difference S_A − S_B on the jobs both rows have, resampled the same way,
gives the paired interval that decides whether A is above B (leaderboard/uncertainty.py). Columns
without per-instance values (older records, FID) keep their job value in every resample: only the
job level is resampled for them. The RNG is seeded from the task and the job keys (never from the
row's values), so the same records give the same intervals whatever their order, and adding a row
changes no other row's draws.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Hashable, Mapping, Sequence

import numpy as np

from bench.core.instances import PerInstance
from leaderboard.score import ScoreColumns, floor_of, score_array

LEVEL = 0.95
RESAMPLES = 2000
MIN_JOBS = 2  # a row (or a pair) needs this many jobs for an interval: one job says nothing about the spread between jobs


@dataclass(frozen=True)
class Job:
    """One job's values as the bootstrap reads them."""

    key: Hashable  # (task options, target, seed): what pairs it with other rows' jobs and with Original
    metrics: Mapping[str, float]
    instances: Mapping[str, PerInstance] = field(default_factory=dict)


def _seed(*parts) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little")


class PairedBootstrap:
    """The shared resamples of one task: job counts and per-(job, set) instance counts."""

    def __init__(self, task: str, keys: Sequence[Hashable], resamples: int = RESAMPLES):
        self.task = task
        self.keys = sorted(set(keys), key=repr)
        self.index = {k: i for i, k in enumerate(self.keys)}
        self.resamples = resamples
        rng = np.random.default_rng(_seed("jobs", task, [repr(k) for k in self.keys]))
        k = len(self.keys)
        # (B, K) multiplicities of each job key in each resample
        self.job_counts = rng.multinomial(k, np.full(k, 1 / k), size=resamples).astype(np.float64) if k else np.zeros((resamples, 0))
        self._instance_counts: dict = {}

    def instance_counts(self, key: Hashable, per: PerInstance) -> np.ndarray:
        """(B, n) multiplicities of one job's instances of one set: the same for every row on that key."""
        ck = (repr(key), per.set, per.ids)
        if ck not in self._instance_counts:
            n = len(per.ids)
            rng = np.random.default_rng(_seed("instances", self.task, ck))
            self._instance_counts[ck] = rng.multinomial(n, np.full(n, 1 / n), size=self.resamples).astype(np.float64)
        return self._instance_counts[ck]

    def column(self, job: Job, col: str) -> np.ndarray:
        """(B,) the job's column recomputed on each resample of its instances (constant without them)."""
        per = job.instances.get(col)
        if per is None:
            return np.full(self.resamples, float(job.metrics.get(col, math.nan)))
        counts = self.instance_counts(job.key, per)
        total = counts @ np.asarray(per.values, dtype=np.float64)
        return total if per.reduce == "sum" else total / len(per.values)

    def scores(self, job: Job, reference: Job | Mapping[str, float], cols: ScoreColumns) -> np.ndarray:
        """(B,) the job's ranking scalar per resample against Original: resampled with the same draw when
        `reference` is Original's job on the same key, else against its fixed values."""
        if isinstance(reference, Job):
            ref, ref_metrics = (lambda c: self.column(reference, c)), reference.metrics
        else:
            ref, ref_metrics = (lambda c: reference.get(c, math.nan)), reference
        integrity = (None,) * 3
        if cols.integrity:  # the floor is one measured value per job key: never resampled
            integrity = (self.column(job, cols.integrity), ref(cols.integrity), floor_of(cols, job.metrics, ref_metrics))
        safe = (None,) * 3
        if cols.safe:  # resampled with the forget column's instances (the same images); the floor is not
            safe = (self.column(job, cols.safe), ref(cols.safe), floor_of(cols, job.metrics, ref_metrics, "safe_floor"))
        return score_array(self.column(job, cols.forget), ref(cols.forget), self.column(job, cols.keep), ref(cols.keep),
                           cols.ideal, *integrity, cols=cols, safe=safe[0], safe_original=safe[1], safe_floor=safe[2])

    def mean(self, per_key: Mapping[Hashable, np.ndarray]) -> np.ndarray:
        """(B,) a row's mean over the drawn jobs it has (nan in a resample that drew none of them)."""
        keys = list(per_key)
        w = self.job_counts[:, [self.index[k] for k in keys]]
        vals = np.stack([per_key[k] for k in keys], axis=1)  # (B, n_keys)
        finite = np.isfinite(vals)
        w = np.where(finite, w, 0.0)
        total = w.sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, (w * np.where(finite, vals, 0.0)).sum(1) / total, np.nan)

    def difference(self, a: Mapping[Hashable, np.ndarray], b: Mapping[Hashable, np.ndarray]) -> np.ndarray | None:
        """(B,) paired S_A − S_B over the jobs both rows have; None when they share fewer than MIN_JOBS."""
        common = [k for k in a if k in b]
        if len(common) < MIN_JOBS:
            return None
        return self.mean({k: a[k] - b[k] for k in common})


def interval(resampled: np.ndarray | None, point: float, level: float = LEVEL) -> tuple[float, float] | None:
    """Percentile interval of the resampled values, widened to contain the point estimate."""
    if resampled is None or not math.isfinite(point):
        return None
    finite = resampled[np.isfinite(resampled)]
    if len(finite) == 0:
        return None
    alpha = (1 - level) / 2
    lo, hi = np.quantile(finite, [alpha, 1 - alpha])
    return min(float(lo), point), max(float(hi), point)


def mean_per_key(values: Mapping[Hashable, Sequence[np.ndarray]]) -> dict[Hashable, np.ndarray]:
    """Duplicate records of one job key count once: their resamples are averaged."""
    return {k: np.mean(np.stack(v), axis=0) for k, v in values.items()}
