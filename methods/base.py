"""The Method interface and its registry.

A method is a class with a `name`, a hyper-parameter dataclass `HParams` (reference defaults,
optionally overridden per task kind in `defaults_by_kind`), and `unlearn(...)`, which edits the
model's denoiser in place.  Register with `@register_method` or via the
`unlearn_bench.methods` entry-point group; `unlearn-bench submit FILE.py` also takes a plain file.
"""
from __future__ import annotations

import dataclasses
import typing
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from bench.core.adapters.base import DiffusionModel
from bench.core.context import Budget, RunContext
from bench.core.data import UnlearnData
from bench.core.errors import ConfigError
from bench.core.registry import Registry

BUILTIN_METHOD_MODULES = (
    "methods.original",
    "methods.finetune",
    "methods.graddiff",
    "methods.rgd",
    "methods.rg",
    "methods.salun",
    "methods.esd",
    "methods.retrain",
    "methods.uce",
    "methods.concept_ablation",
)


METHODS: Registry[type["Method"]] = Registry(
    "method", entry_point_group="unlearn_bench.methods", builtin_modules=BUILTIN_METHOD_MODULES
)


def register_method(cls: type["Method"]) -> type["Method"]:
    """Class decorator: make a Method available by its `name`."""
    return METHODS.register(cls.name)(cls)


@dataclasses.dataclass
class NoHParams:
    pass


class Method(ABC):
    name: ClassVar[str]
    HParams: ClassVar[type] = NoHParams
    # task kind ("class" | "concept" | "style") -> field overrides of the reference defaults
    defaults_by_kind: ClassVar[dict[str, dict[str, Any]]] = {}
    # task kinds this method applies to (Retrain: class only)
    task_kinds: ClassVar[tuple[str, ...]] = ("class", "concept", "style")
    # what `unlearn-bench tune` searches (methods/search_space.py); None: the learning rate alone
    search_space: ClassVar[dict[str, Any] | None] = None

    def __init__(self, hparams: Any = None):
        self.hparams = hparams if hparams is not None else self.HParams()

    @classmethod
    def default_hparams(cls, task_kind: str, /, **overrides: Any) -> Any:
        """The hyper-parameters a job runs with: the reference defaults, this task kind's
        `defaults_by_kind` on top, then `overrides` (a suite's values) on top of those.

        `task_kind` may name a recipe too, "concept/nudity" (a task's `defaults_key()`): the kind's
        defaults apply, then the recipe's (`defaults_by_kind["concept/nudity"]`) where the method has one."""
        kind = task_kind.split("/", 1)[0]
        recipe = cls.defaults_by_kind.get(task_kind, {}) if task_kind != kind else {}
        values = {**cls.defaults_by_kind.get(kind, {}), **recipe, **overrides}
        return make_hparams(cls, values)

    @abstractmethod
    def unlearn(
        self,
        model: DiffusionModel,
        forget: UnlearnData,
        remain: UnlearnData,
        budget: Budget,
        ctx: RunContext,
    ) -> dict | None:
        """Edit `model.denoiser` in place; optionally return extra statistics for the record."""


def check_choices(hparams: Any) -> None:
    """ValueError for a field typed as a Literal whose value is not one of its choices (one home for
    every HParams' `__post_init__`; the plan checks the same types before a job starts)."""
    hints = typing.get_type_hints(type(hparams))
    for f in dataclasses.fields(hparams):
        tp = hints.get(f.name)
        if typing.get_origin(tp) is typing.Literal and getattr(hparams, f.name) not in typing.get_args(tp):
            choices = "|".join(str(a) for a in typing.get_args(tp))
            raise ValueError(f"{f.name} must be {choices}, not {getattr(hparams, f.name)!r}")


def make_hparams(cls: type[Method], values: dict[str, Any]) -> Any:
    if not dataclasses.is_dataclass(cls.HParams):
        raise ConfigError(f"method {cls.name!r}: HParams must be a dataclass")
    known = {f.name for f in dataclasses.fields(cls.HParams)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"method {cls.name!r} has no hyper-parameter(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    try:
        return cls.HParams(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"method {cls.name!r}: bad hyper-parameters {values}: {exc}") from exc


def hparams_dict(hparams: Any) -> dict[str, Any]:
    return dataclasses.asdict(hparams) if dataclasses.is_dataclass(hparams) else {}
