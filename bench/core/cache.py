"""The suite's on-disk cache ($UNLEARN_BENCH_CACHE, default ~/.cache/unlearn-bench) and the one way
to fill it: computed once, written atomically (bench/core/atomic.py), so concurrent workers that race
to fill the same entry never read a half-written file or clobber each other's temp file."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, TypeVar

import torch

from bench.core.atomic import write_atomic

T = TypeVar("T")


def cache_root() -> Path:
    return Path(os.environ.get("UNLEARN_BENCH_CACHE", Path.home() / ".cache" / "unlearn-bench"))


def cached(path: Path, make: Callable[[], T]) -> T:
    """The tensors at `path` when it exists (loaded weights-only), else make(), saved atomically, returned."""
    if path.exists():
        return torch.load(path, map_location="cpu", weights_only=True)
    obj = make()
    try:
        write_atomic(path, lambda f: torch.save(obj, f))
    except PermissionError:  # a method's process may write only its own directory (bench/runner/sandbox.py)
        pass
    return obj
