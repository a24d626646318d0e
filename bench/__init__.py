"""unlearn-bench: the harness and the public API for method authors.

    from bench import Method, register_method, UnlearnData, Budget, RunContext, DiffusionModel
    from bench import simple_loss, simple_loss_terms, truncated_forget_loss

Names are imported lazily so that `unlearn-bench --help` stays fast.
"""
from __future__ import annotations

import importlib

_PUBLIC = {
    "Method": "methods.base",
    "register_method": "methods.base",
    "DiffusionModel": "bench.adapters.base",
    "UnlearnData": "bench.data",
    "paired_batches": "bench.data",
    "Budget": "bench.context",
    "RunContext": "bench.context",
    "simple_loss": "methods.losses",
    "simple_loss_terms": "methods.losses",
    "truncated_forget_loss": "methods.losses",
    "forget_loss": "methods.losses",
    "noised_batch": "methods.losses",
    "select_trainable": "methods.training",
    "BenchError": "bench.errors",
}

__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'bench' has no attribute {name!r}")
