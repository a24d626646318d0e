"""Hyper-parameter search spaces, declared next to each method's HParams (`Method.search_space`).

`unlearn-bench tune` gives every method the same number of trials over its own space. A space names
only the method's key knobs (learning rate and one weight such as λ, α or η; UCE, which has no
learning rate, its erase and preserve scales); a method that declares none is tuned on its learning
rate alone, and one with neither (Original, Retrain's fixed recipe) is not tuned. The learning
rate is searched around the value the suite resolves (log-uniform within a factor), so one space
serves the mini models (lr 1e-4) and Stable Diffusion (1e-5) alike.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Union


@dataclass(frozen=True)
class LogUniform:
    low: float
    high: float

    def __post_init__(self) -> None:
        if not 0 < self.low < self.high:
            raise ValueError(f"LogUniform needs 0 < low < high, got {self.low}, {self.high}")


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"Uniform needs low < high, got {self.low}, {self.high}")


@dataclass(frozen=True)
class AroundResolved:
    """Log-uniform in [v/factor, v·factor] around the value v the suite resolves for this field."""

    factor: float = 10.0

    def __post_init__(self) -> None:
        if self.factor <= 1:
            raise ValueError(f"AroundResolved needs factor > 1, got {self.factor}")


Dimension = Union[LogUniform, Uniform, AroundResolved]
LR_ONLY: dict[str, Dimension] = {"lr": AroundResolved(10.0)}


def declared_space(method_cls) -> dict[str, Dimension]:
    """The method's own space, else learning rate alone, else nothing (not tunable)."""
    space = getattr(method_cls, "search_space", None)
    if space is None:
        fields = {f.name for f in dataclasses.fields(method_cls.HParams)} if dataclasses.is_dataclass(method_cls.HParams) else set()
        space = LR_ONLY if "lr" in fields else {}
    return dict(space)


def resolve_space(space: dict[str, Dimension], resolved_hparams: Any) -> dict[str, LogUniform | Uniform]:
    """Concrete bounds: `AroundResolved` becomes a LogUniform around the resolved value."""
    out: dict[str, LogUniform | Uniform] = {}
    for name, dim in space.items():
        if not hasattr(resolved_hparams, name):
            raise ValueError(f"search space names {name!r}, which the hyper-parameters do not have")
        if isinstance(dim, AroundResolved):
            v = float(getattr(resolved_hparams, name))
            out[name] = LogUniform(v / dim.factor, v * dim.factor)
        else:
            out[name] = dim
    return out
