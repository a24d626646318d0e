"""The Task interface and its registry."""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

from torch import Tensor

from bench.core.adapters.base import DiffusionModel
from bench.core.context import RunContext
from bench.core.data import UnlearnData
from bench.core.errors import ConfigError
from bench.core.evaluation import EarlierTarget, EvalSet, Evaluation, check_requirements, missing
from bench.core.registry import Registry

BUILTIN_TASK_MODULES = ("tasks.mini_digits", "tasks.mini_shapes", "tasks.stable_diffusion", "tasks.cifar10")


TASKS: Registry[type["Task"]] = Registry("task", entry_point_group="unlearn_bench.tasks", builtin_modules=BUILTIN_TASK_MODULES)


def register_task(cls: type["Task"]) -> type["Task"]:
    return TASKS.register(cls.name)(cls)


@dataclass
class NoConfig:
    pass


@dataclass
class TaskInstance:
    """One (task, target) ready to run: a trainable base model, its data, and what metrics need."""

    task: "Task"
    target: str
    model: DiffusionModel
    forget: UnlearnData
    remain: UnlearnData
    evaluation: Evaluation
    _samples: dict = field(default_factory=dict, repr=False)

    def __post_init__(self):
        """A task's declaration must hold: what it says it provides, its build() filled."""
        lacking = missing(self.task.provides(), self.evaluation.provided())
        if lacking:
            raise ConfigError(f"task {self.task.name!r} declares {', '.join(lacking)} in provides() but its build() did not set it")

    def samples(self, model: DiffusionModel, name: str, make: Callable[[], Tensor]) -> Tensor:
        """Evaluation images of `model`, generated once per (model, set) and shared by all metrics."""
        key = (id(model), name)
        if key not in self._samples:
            self._samples[key] = make()
        return self._samples[key]


# task option (a Config bool) -> the metric it adds: the adversarial-prompt ASR (metrics/attack.py), UA after
# relearning (metrics/relearn.py), accuracy on the neighbouring concepts (metrics/neighbours.py)
OPTIONAL_METRICS = {"attack": "attack-asr", "relearn": "relearn", "neighbours": "neighbour-accuracy"}


class Task(ABC):
    name: ClassVar[str]
    kind: ClassVar[str]  # "class" | "concept" | "style"
    recipe: ClassVar[str | None] = None  # a finer key for methods' per-task defaults (defaults_key), e.g. "nudity"
    metrics: ClassVar[tuple[str, ...]]
    Config: ClassVar[type] = NoConfig
    description: ClassVar[str] = ""
    checkpoint_options: ClassVar[tuple[str, ...]] = ()  # Config fields naming weights a user may give (given_checkpoints)
    # sequential unlearning: build()/prepare() take `erased` (the targets erased before this one in a chain) and
    # leave them out of D_r and the keep sets; a plan with sequences on a task without it fails before any job
    supports_sequences: ClassVar[bool] = False

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()
        self.metrics = tuple(type(self).metrics) + tuple(m for option, m in OPTIONAL_METRICS.items() if getattr(self.config, option, False))

    @classmethod
    def make(cls, options: dict[str, Any] | None = None) -> "Task":
        options = options or {}
        known = {f.name for f in dataclasses.fields(cls.Config)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(f"task {cls.name!r} has no option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        try:
            return cls(cls.Config(**options))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"task {cls.name!r}: bad options {options}: {exc}") from exc

    @abstractmethod
    def targets(self) -> list[str]:
        """All targets of the full task (e.g. the 10 classes)."""

    @abstractmethod
    def build(self, target: str, ctx: RunContext, erased: tuple[str, ...] = ()) -> TaskInstance:
        """Base model (trainable copy) + forget/remain sets for one target.

        `erased` (tasks with supports_sequences only; the harness passes it only when non-empty): the targets
        a sequence erased before this one. The forget data and set stay the target's; D_r and every keep
        evaluation set leave the erased targets out (the model is no longer asked to keep them), and
        `evaluation.earlier` lists them in order (EarlierTarget), for the earlier-ua metric."""

    def warm(self) -> None:
        """Read what build() reads from disk (base model, judges, data) into this process's caches, on
        the CPU, computing nothing. The method processes' fork server calls it once per task so that
        every job's child starts with them (bench/runner/method_process.py); by default it does nothing."""
        return None

    def validate_target(self, target: str) -> str:
        target = str(target)
        if target not in self.targets():
            raise ConfigError(f"task {self.name!r} has no target {target!r}; targets: {', '.join(self.targets())}")
        return target

    def validate_erased(self, target: str, erased) -> tuple[str, ...]:
        """The earlier targets of a sequence as names: each a target of the task, distinct, not `target`."""
        names = tuple(self.validate_target(e) for e in erased)
        if len(set(names)) != len(names) or str(target) in names:
            raise ConfigError(f"task {self.name!r}: the targets erased before {target!r} must be distinct others, not {list(names)}")
        return names

    def plan_sets(self, target: str, erased: tuple[str, ...] = ()) -> dict[str, int]:
        """Build, without weights or GPU, everything of `build(target, erased)` that needs none (prompt sets,
        class lists, evaluation sets) and return each set's size by name. The planner calls it for every
        (task, options, target) before any job runs or a machine is booked (bench/runner/plan.py), so an
        option the task cannot honour (more prompts than its vocabulary makes) is a ConfigError naming the
        option and the limit then, not on the GPU. Default: nothing to build ahead."""
        return {}

    def provides(self) -> frozenset[str]:
        """The Evaluation fields its build() fills (bench/core/evaluation.py), for the plan-time check."""
        return frozenset()

    def check_metrics(self) -> None:
        """ConfigError when one of its metrics needs something this task does not provide."""
        from metrics.base import METRICS

        check_requirements(self.name, self.provides(), {m: METRICS.get(m).requires for m in self.metrics})

    def plan_info(self) -> dict:
        """For dry runs, without loading weights: eval_images (generated per job), task_images (generated once per
        task and options and cached, e.g. Original's training images), attack_passes (forward+backward passes per
        job of an attack's optimisation), gpu (bool), optionally gflops_forward and the sampler's settings."""
        return {}

    @classmethod
    def defaults_key(cls) -> str:
        """The key methods' `defaults_by_kind` read: the kind, or "kind/recipe" for a task whose references
        run a recipe of their own (sd-nudity: "concept/nudity"; methods/base.py default_hparams)."""
        return f"{cls.kind}/{cls.recipe}" if cls.recipe else cls.kind

    def concept_prompt(self, target: str) -> str | None:
        """Text tasks: the one prompt that names the erased concept ("nudity", "Van Gogh"), for methods that
        erase a concept word rather than full prompts (ESD's `--prompt`); build() puts it in
        forget.meta["concept_prompt"]. None: the task names none (class tasks)."""
        return None

    def prepare(self, target: str, device: Any = "cpu", erased: tuple[str, ...] = ()) -> None:
        """Fill the on-disk caches `build(target, erased=erased)` reads (e.g. Original's training images). The
        harness calls it before the method's process starts: that process may not write the cache
        (bench/runner/sandbox.py), so without it every job would regenerate what is not cached yet. It passes
        `erased` (see build) only when non-empty."""
        return None  # a task whose build caches nothing

    def checkpoints(self) -> dict[str, str]:
        """Name -> content hash of the weights the task loads (provenance)."""
        return {}

    def required_artifacts(self) -> tuple[str, ...]:
        """Names of the weights and data sets `unlearn-bench fetch` gets for this task with its options (the registry in
        bench/core/fetch_registry.py): what it reads from a cache rather than from the package or a path the user
        gave. By default none (the mini tasks ship theirs)."""
        return ()

    def given_checkpoints(self) -> dict[str, str]:
        """Option -> content digest of each checkpoint a task option names other than its default (a
        file of the user's). It enters the job's setting hash (bench/runner/plan.py), so another file
        under the same path is another row, and resume never takes one for the other."""
        defaults = {f.name: f.default for f in dataclasses.fields(self.config)}
        out = {}
        for name in self.checkpoint_options:
            value = getattr(self.config, name, None)
            if value is not None and value != defaults.get(name):
                out[name] = self.checkpoint_identity(name, str(value))
        return out

    def checkpoint_identity(self, option: str, value: str) -> str:
        """A directory: its weight files' digest (checked against its recipe.json when it has one); a
        file: its bytes' digest; hashed once per process and file state."""
        from pathlib import Path

        from bench.core.hashing import cached_file_digest, verified_checkpoint

        path = Path(value).expanduser()
        if path.is_dir():
            return verified_checkpoint(path)
        if path.is_file():
            return cached_file_digest(path)
        return "missing"  # the job says what is missing, with how to fetch it


def config_dict(obj: Any) -> dict[str, Any]:
    return dataclasses.asdict(obj) if dataclasses.is_dataclass(obj) else {}


# -- evaluation seeds: one home ---------------------------------------------------------------------
# Evaluation noise is fixed per set (never the job seed), so every method is judged on the same
# noise; each set's seeds are `seeds_for(n, offset)` from these offsets (the training pairs a task
# generates use seeds 0, 1, …). Changing a value changes every evaluation (and the image caches).
CLASS_FORGET_EVAL_SEED = 0  # class-conditional tasks (mini-digits, cifar10): target-class samples
MINI_DIGITS_REMAIN_EVAL_SEED = 10_000  # mini-digits: samples of the other digits
CIFAR10_REMAIN_EVAL_SEED = 1_000_000  # cifar10: samples of the other classes
T2I_EVAL_SEEDS = {"forget": 20_000, "remain_train": 30_000, "remain_test": 40_000}  # mini-shapes and SD, per prompt set
# the retention floor (metrics/retention.py): Original's images of the retention set's prompts under these other seeds
RETENTION_FLOOR_SEED = 45_000
NEIGHBOUR_EVAL_SEED = 47_000  # the neighbouring concepts' evaluation set (metrics/neighbours.py)
# SD sets read from a prompt file without a seed column (bench/core/prompt_sets.py): the nudity count's and the attack's
NUDITY_EVAL_SEED = 60_000
ATTACK_EVAL_SEED = 70_000
SHAPES_QUALITY_SEED = 50_000  # mini-shapes pretraining: the sample-quality check (tasks/mini/shapes_recipes.py)
SHAPES_HELDOUT_SEED = 10_000_000  # mini CLIPs: drawings of the held-out combinations (tasks/mini/shapes_clip.py)

# what the class and the text-to-image task families hand their metrics (their provides())
CLASS_TASK_PROVIDES = frozenset({"eval_sets:forget", "eval_sets:remain", "sampler", "num_classes", "classifier",
                                 "classifier_name", "fid_extractor", "fid_reference", "fid_name"})
T2I_TASK_PROVIDES = frozenset({f"eval_sets:{name}" for name in T2I_EVAL_SEEDS} | {"eval_sets:retention_floor", "sampler", "prompt_sets",
                                                                              "clip_judge", "original_images"})


def t2i_eval_sets(sets: dict, m: int) -> dict:
    """The text-to-image evaluation sets: forget, remain_train, remain_test (m prompts each, one seed per prompt
    from T2I_EVAL_SEEDS), retention_floor, remain_test's prompts under other seeds (RETENTION_FLOOR_SEED), and,
    where the task pairs its forget prompts with safe twins (`eval_forget_safe`), safe_twins: no images of its
    own, the text AS-safe reads the forget images against."""
    out = {name: (sets[f"eval_{name}"], seeds_for(m, offset)) for name, offset in T2I_EVAL_SEEDS.items()}
    out["retention_floor"] = (sets["eval_remain_test"], seeds_for(m, RETENTION_FLOOR_SEED))
    if "eval_forget_safe" in sets:  # the forget prompts' safe twins, prompt for prompt (metrics/safe_alignment.py)
        out["safe_twins"] = (sets["eval_forget_safe"], out["forget"][1])
    return out


def limit_sets(eval_sets: dict, n: int | None) -> dict:
    """Each evaluation set cut to its first n (prompt or class, seed) pairs; n None: as they are."""
    return eval_sets if n is None else {k: (list(v[0])[:n], list(v[1])[:n]) for k, v in eval_sets.items()}


def set_sizes(training: dict[str, list], eval_sets: dict) -> dict[str, int]:
    """plan_sets' answer: the size of each training set and of each evaluation set (`eval:<name>`)."""
    return {**{k: len(v) for k, v in training.items()}, **{f"eval:{k}": len(v[0]) for k, v in eval_sets.items()}}


def check_counts(task: str, config, *names: str) -> None:
    """ConfigError naming the first option among `names` that is not a whole number ≥ 1."""
    for name in names:
        value = getattr(config, name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{task}: option {name}={value!r} must be a whole number >= 1")


def seeds_for(n: int, offset: int) -> list[int]:
    """The seeds of an evaluation set of n samples that starts at `offset`."""
    return list(range(offset, offset + n))


def class_forget_set(k: int, n: int) -> EvalSet:
    """A class task's forget evaluation set: n samples of class k (the target's, and an earlier target's)."""
    return [k] * n, seeds_for(n, CLASS_FORGET_EVAL_SEED)


def class_remain_set(kept: list[int], per_class: int, offset: int) -> EvalSet:
    """A class task's remain evaluation set: per_class samples of each kept class, in order."""
    return [c for c in kept for _ in range(per_class)], seeds_for(per_class * len(kept), offset)


def kept_classes(task: Task, target: str, erased: tuple[str, ...] = ()) -> tuple[int, list[int]]:
    """Class tasks (targets "0", "1", …): (the target's class, the classes the model is asked to keep: every other
    class less a sequence's earlier targets); ConfigError when none is left."""
    k = int(task.validate_target(target))
    gone = [int(e) for e in task.validate_erased(target, erased)]
    others = [c for c in range(len(task.targets())) if c != k and c not in gone]
    if not others:
        raise ConfigError(f"{task.name}: erasing {k} after {', '.join(map(str, gone))} leaves no class to keep")
    return k, others


def earlier_classes(erased: tuple[str, ...], n: int) -> list[EarlierTarget]:
    """Class tasks: the earlier targets of a sequence with their forget sets (n samples each)."""
    return [EarlierTarget(e, class_forget_set(int(e), n), class_id=int(e)) for e in erased]


def build_instance(task, target: str, ctx, erased: tuple[str, ...] = ()):
    """task.build, with the earlier targets of a chain when there are any (a task without sequences is never asked: the
    harness passes `erased` only for a chain's later steps, bench/runner/chains.py)."""
    return task.build(target, ctx, erased=tuple(erased)) if erased else task.build(target, ctx)


def prepare_instance(task, target: str, device, erased: tuple[str, ...] = ()) -> None:
    if erased:
        task.prepare(target, device, erased=tuple(erased))
    else:
        task.prepare(target, device)
