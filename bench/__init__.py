"""unlearn-bench: the harness and the public API for method authors.

    from bench import Method, register_method, UnlearnData, Budget, RunContext, DiffusionModel
    from bench import simple_loss, simple_loss_terms, truncated_forget_loss

Names are imported lazily so that `unlearn-bench --help` stays fast; the TYPE_CHECKING block lets
editors and type checkers see them. Layout (imports only point down): bench.core (the kernel) <-
methods, metrics, leaderboard <- tasks <- bench.runner <- bench.cli; docs/ARCHITECTURE.md.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_PUBLIC = {
    "Method": "methods.base",
    "register_method": "methods.base",
    "DiffusionModel": "bench.core.adapters.base",
    "UnlearnData": "bench.core.data",
    "paired_batches": "bench.core.data",
    "Budget": "bench.core.context",
    "RunContext": "bench.core.context",
    "simple_loss": "bench.core.denoising",
    "simple_loss_terms": "bench.core.denoising",
    "noised_batch": "bench.core.denoising",
    "truncated_forget_loss": "methods.losses",
    "forget_loss": "methods.losses",
    "select_trainable": "methods.training",
    "BenchError": "bench.core.errors",
}

if TYPE_CHECKING:
    from bench.core.adapters.base import DiffusionModel
    from bench.core.context import Budget, RunContext
    from bench.core.data import UnlearnData, paired_batches
    from bench.core.denoising import noised_batch, simple_loss, simple_loss_terms
    from bench.core.errors import BenchError
    from methods.base import Method, register_method
    from methods.losses import forget_loss, truncated_forget_loss
    from methods.training import select_trainable

__all__ = [
    "BenchError",
    "Budget",
    "DiffusionModel",
    "Method",
    "RunContext",
    "UnlearnData",
    "forget_loss",
    "noised_batch",
    "paired_batches",
    "register_method",
    "select_trainable",
    "simple_loss",
    "simple_loss_terms",
    "truncated_forget_loss",
]
assert set(__all__) == set(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
