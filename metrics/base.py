"""The Metric interface and its registry."""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import ClassVar, Literal

from bench.core.adapters.base import DiffusionModel
from bench.core.context import RunContext
from bench.core.evaluation import by_guidance
from bench.core.registry import Registry

Direction = Literal["↑", "↓"]

BUILTIN_METRIC_MODULES = (
    "metrics.classification",
    "metrics.fid",
    "metrics.alignment",
    "metrics.safe_alignment",
    "metrics.nudity",
    "metrics.retention",
    "metrics.attack",
    "metrics.relearn",
    "metrics.neighbours",
    "metrics.sequence",
)


METRICS: Registry[type["Metric"]] = Registry(
    "metric", entry_point_group="unlearn_bench.metrics", builtin_modules=BUILTIN_METRIC_MODULES
)


def register_metric(cls: type["Metric"]) -> type["Metric"]:
    return METRICS.register(cls.name)(cls)


class Metric(ABC):
    name: ClassVar[str]
    description: ClassVar[str] = ""
    # Evaluation fields it reads (bench/core/evaluation.py): "field", "eval_sets:<set>", or "a|b" for either
    requires: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def columns(self, inst) -> dict[str, Direction]:
        """Column name (starting with the short name, carrying backbone/settings) -> direction."""

    @abstractmethod
    def compute(self, inst, unlearned: DiffusionModel, original: DiffusionModel, ctx: RunContext) -> dict[str, float]:
        ...


def sample_set(model: DiffusionModel, keys, seeds, sampler: dict, guidance: list[float] | None = None):
    """Images in [0, 1] of `model` for (keys, seeds) under the task's sampler; `guidance`: one value per key (a prompt
    file's own), else the sampler's."""
    if guidance is None:
        return model.sample(keys, seeds, **sampler)
    rest = {k: v for k, v in sampler.items() if k != "guidance"}
    return by_guidance(guidance, sampler.get("guidance", 7.5), len(keys),
                       lambda idx, g: model.sample([keys[i] for i in idx], [seeds[i] for i in idx], guidance=g, **rest))


def generated(inst, model: DiffusionModel, which: str, ctx: RunContext | None = None, eval_set=None):
    """Images in [0, 1] of `model` on the task's evaluation set `which` (cached per model), at the set's own guidance
    when it has one (`evaluation.eval_guidance`); `eval_set`: the (keys, seeds) to draw instead of the task's set of that
    name (e.g. an earlier target's, metrics/sequence.py)."""
    keys, seeds = eval_set if eval_set is not None else inst.evaluation.eval_sets[which]
    guidance = None if eval_set is not None else inst.evaluation.eval_guidance.get(which)

    def make():
        t0 = time.perf_counter()
        images = sample_set(model, list(keys), list(seeds), inst.evaluation.sampler, guidance)
        if ctx is not None:
            ctx.images_generated += len(keys)
            ctx.eval_sample_seconds += time.perf_counter() - t0
        return images

    return inst.samples(model, which, make)
