"""A per-process cache of loaded base checkpoints, so a Ray worker that runs several jobs on the
same base model reads it from disk (and hashes its weights) once.

Keyed by loader, resolved path, device, dtype and a fingerprint of the checkpoint's files
(relative path, size, mtime): a rewritten checkpoint is a new key. Each caller gets an independent
`fresh_copy` (own denoiser, moved to the device; the frozen text encoder/VAE are shared), so
jobs never see each other's edits; the template's denoiser waits in host memory. `UNLEARN_BENCH_MODEL_CACHE=0` turns it off; at most `MAX_ENTRIES` models are kept.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Callable

from bench.core.adapters.base import DiffusionModel
from bench.core.hashing import tree_fingerprint

MAX_ENTRIES = int(os.environ.get("UNLEARN_BENCH_MODEL_CACHE_SIZE", "2"))
_CACHE: "OrderedDict[tuple, tuple[DiffusionModel, str]]" = OrderedDict()
STATS = {"hits": 0, "misses": 0}


def enabled() -> bool:
    return os.environ.get("UNLEARN_BENCH_MODEL_CACHE", "1").lower() not in ("0", "false", "no", "off")


def cached_load(kind: str, directory: str | os.PathLike | None, device, extra: tuple, load: Callable[[], DiffusionModel]) -> DiffusionModel:
    """`load()` once per key in this process; every call returns an independent fresh copy.

    `directory=None` (nothing on disk to fingerprint) bypasses the cache."""
    if not enabled() or directory is None or not Path(directory).is_dir():
        return load()
    root = Path(directory).resolve()
    key = (kind, str(root), str(device), extra, tree_fingerprint(root))
    if key in _CACHE:
        STATS["hits"] += 1
        _CACHE.move_to_end(key)
    else:
        STATS["misses"] += 1
        model = load()
        weights_hash = model.weights_hash()
        if model.device.type != "cpu":  # keep the template's denoiser in host memory: no GPU memory held between jobs
            model.denoiser.to("cpu")
        _CACHE[key] = (model, weights_hash)
        while len(_CACHE) > max(MAX_ENTRIES, 1):
            _CACHE.popitem(last=False)
    model, weights_hash = _CACHE[key]
    copy = model.fresh_copy()
    copy.denoiser.to(device)
    return copy.trust_weights_hash(weights_hash)


def clear() -> None:
    _CACHE.clear()
    STATS.update(hits=0, misses=0)


def stats() -> dict:
    return {**STATS, "entries": len(_CACHE)}
