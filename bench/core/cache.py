"""The suite's on-disk cache ($UNLEARN_BENCH_CACHE, default ~/.cache/unlearn-bench) and the one way
to fill it: computed once, written atomically under a unique temporary name, so concurrent workers
that race to fill the same entry never read a half-written file or clobber each other's temp file."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable, TypeVar

import torch

T = TypeVar("T")


def cache_root() -> Path:
    return Path(os.environ.get("UNLEARN_BENCH_CACHE", Path.home() / ".cache" / "unlearn-bench"))


def save_atomic(obj, path: Path) -> None:
    """torch.save to `path` via a temporary file unique to this writer, then an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cached(path: Path, make: Callable[[], T]) -> T:
    """The tensors at `path` when it exists (loaded weights-only), else make(), saved atomically, returned."""
    if path.exists():
        return torch.load(path, map_location="cpu", weights_only=True)
    obj = make()
    save_atomic(obj, path)
    return obj
