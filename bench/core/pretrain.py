"""`unlearn-bench pretrain NAME`: reproducible recipes for the base models tasks need."""
from __future__ import annotations

from typing import Callable

from bench.core.registry import Registry

# name -> callable(out_dir: str | None, device: str) -> summary dict (printed, and saved beside the weights)
PRETRAIN: Registry[Callable[..., dict]] = Registry(
    "pretrain recipe", builtin_modules=("tasks.mini.recipes", "tasks.mini_shapes", "tasks.cifar10")
)


def register_pretrain(name: str):
    return PRETRAIN.register(name)
