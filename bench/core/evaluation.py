"""The contract between a task and its metrics: what one (task, target) hands over for evaluation.

A task's `build()` returns a TaskInstance whose `evaluation` is an `Evaluation`; a metric declares
the fields it reads in `requires` (names of fields below, or `eval_sets:<name>` for one evaluation
set), and a task declares what it fills in `provides()`. The runner compares the two when it plans
a job (a metric the task cannot serve fails before any unlearning runs), and the TaskInstance
checks at build time that the task filled what it declared.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from torch import Tensor

from bench.core.errors import ConfigError

EvalSet = tuple[list, list[int]]  # (prompts or class ids, one noise seed per image): the same for every method


@dataclass(frozen=True)
class ZeroShot:
    """CLIP zero-shot labelling of the forget images: `labels[target]` is the erased concept."""

    labels: list[str]
    target: int
    what: str = "labels"  # e.g. "artists", "shapes": goes into the column name


@dataclass(frozen=True)
class NeighbourSet:
    """The concepts closest to the target (text tasks, set `neighbours`): the judge's zero-shot labels and,
    per prompt of the set, the index of the label it asks for."""

    labels: list[str]
    truth: list[int]
    names: tuple[str, ...]  # the neighbours, for the column name


@dataclass(frozen=True)
class EarlierTarget:
    """A target erased earlier in a sequence (sequential unlearning): its forget evaluation set as it was when it
    was the target (same prompts or classes, same seeds) and what the task's UA judge needs to name it."""

    name: str
    eval_set: EvalSet
    class_id: int | None = None  # class tasks: the class the classifier must not recognise
    zero_shot: ZeroShot | None = None  # text tasks: the zero-shot labels with this target's index


@dataclass
class Evaluation:
    """Everything a metric may read about one (task, target), typed; unset optional fields are None."""

    eval_sets: dict[str, EvalSet]
    sampler: dict[str, Any] = field(default_factory=dict)  # keyword arguments of model.sample (steps, guidance, ...)
    num_classes: int | None = None  # class tasks
    classifier: Callable[[Tensor], Tensor] | None = None  # images in [0, 1] -> logits (UA/RA)
    classifier_name: str | None = None
    fid_extractor: Callable[[Tensor], Tensor] | None = None  # images in [0, 1] -> features
    fid_reference: Any = None  # reference features (N×D array) or statistics {"mu", "sigma"}
    fid_name: str | None = None
    fid_reference_source: str | None = None  # provenance of precomputed statistics
    # FID's floor (the score's integrity zero, leaderboard/score.py): () -> features (N×D) of real images unrelated
    # to the remain classes, read on first use; fid_floor_name says what they are (e.g. "real forgotten class")
    fid_floor: Callable[[], Any] | None = None
    fid_floor_name: str | None = None
    clip_judge: Any = None  # metrics.clip_judge.ClipJudge (alignment, zero-shot UA, retention)
    zero_shot: ZeroShot | None = None
    retention_features: tuple[str, Callable[[Tensor], Tensor]] | None = None  # (name, images01 -> N×D)
    retention_set: str = "remain_test"
    retention_space: str = "auto"  # without retention_features: auto | lpips | clip (metrics/retention.py)
    original_images: dict[str, Tensor] = field(default_factory=dict)  # cached Original images per eval set
    nudity_set: str = "forget"
    nudenet_judge: bool = False  # the concept is judged by NudeNet on images (sd-nudity), not by a CLIP zero-shot
    nudenet_classes: str = "exposed7"  # what NudeNet's counts count (metrics/nudity.py: COUNTINGS): exposed7 | reference
    eval_guidance: dict[str, list[float]] = field(default_factory=dict)  # per-image guidance of a set (I2P, a prompt file's)
    attack_settings: Any = None  # metrics.attack.AttackSettings; None: the metric's default for the task
    relearn_settings: Any = None  # metrics.relearn.RelearnSettings; None: the metric's default for the task
    neighbours: NeighbourSet | None = None  # with eval set "neighbours": over-erasure (metrics/neighbours.py)
    prompt_sets: dict[str, list[str]] = field(default_factory=dict)  # text tasks: the prompt splits, for inspection
    earlier: list[EarlierTarget] = field(default_factory=list)  # sequence jobs: the targets erased before (metrics/sequence.py)

    def provided(self) -> frozenset[str]:
        """Field names that are set, plus `eval_sets:<name>` per evaluation set."""
        out = {f.name for f in dataclasses.fields(self) if _is_set(getattr(self, f.name))}
        return frozenset(out | {f"eval_sets:{k}" for k in self.eval_sets})


def _is_set(value: Any) -> bool:
    """Not None, False or an empty dict/list (arrays and tensors count as set, whatever they hold)."""
    if value is None or value is False:
        return False
    return not (isinstance(value, (dict, list, tuple)) and len(value) == 0)


def missing(required: Iterable[str], provided: Iterable[str]) -> list[str]:
    """Requirements not met; "a|b" is met by either."""
    provided = set(provided)
    return sorted(r for r in required if not provided & set(r.split("|")))


def check_requirements(task_name: str, provided: Iterable[str], metrics: dict[str, Iterable[str]]) -> None:
    """ConfigError naming each metric whose `requires` the task does not provide."""
    provided = set(provided)
    problems = [f"metric {m!r} needs {', '.join(missing(req, provided))}" for m, req in metrics.items() if missing(req, provided)]
    if problems:
        raise ConfigError(f"task {task_name!r} cannot be judged as planned: {'; '.join(problems)} (not in the task's provides())")


def by_guidance(guidance: list[float] | None, default: float, n: int, make: Callable[[list[int], float], Tensor]) -> Tensor:
    """`make(indices, g)` once per distinct guidance of a set whose prompts carry their own (I2P, UnlearnDiffAtk's
    `evaluation_guidance`; None: all at `default`), the results stacked back in the set's order."""
    import torch

    values = list(guidance) if guidance is not None else [default] * n
    out: list = [None] * n
    for g in sorted(set(values)):
        idx = [i for i, v in enumerate(values) if v == g]
        for i, item in zip(idx, make(idx, g)):
            out[i] = item
    return torch.stack(out)


FIELDS = frozenset(f.name for f in dataclasses.fields(Evaluation))
