"""Which remain examples RGD's remain gradient is taken over (the "diversity" of RGD).

balanced: an equal count from every remaining class (RGD: 50 per class, 450 images on CIFAR-10);
narrow:   the same total drawn from the two classes closest to the target (the paper's ablation);
uniform:  the same total drawn uniformly from the remain data, class frequencies as they come.
Concept/style tasks have no classes: their task already builds a diverse D_r from combinatorial
prompt templates, so `balanced` and `uniform` take the whole set, and `narrow` needs the task to
name a narrow subset (`remain.meta["narrow_indices"]`).
"""
from __future__ import annotations

from typing import Literal, Sequence

import torch
from torch import Tensor

from bench.core.data import UnlearnData
from bench.core.errors import ConfigError

RemainSampling = Literal["balanced", "narrow", "uniform"]
NARROW_CLASSES = 2


def _take(candidates: Tensor, n: int, generator: torch.Generator, what: str) -> Tensor:
    if len(candidates) < n:
        raise ConfigError(f"remain set has only {len(candidates)} examples of {what}; {n} needed")
    return candidates[torch.randperm(len(candidates), generator=generator)[:n]]


def class_subset_indices(
    labels: Tensor,
    per_class: int,
    mode: RemainSampling,
    generator: torch.Generator,
    neighbours: Sequence[int] | None = None,
) -> Tensor:
    """Indices into `labels` of the remain subset; every mode has per_class × (#classes) examples."""
    labels = labels.cpu()
    classes = sorted(set(labels.tolist()))
    total = per_class * len(classes)
    if mode == "balanced":
        parts = [_take(torch.nonzero(labels == c).flatten(), per_class, generator, f"class {c}") for c in classes]
        return torch.cat(parts)
    if mode == "narrow":
        if not neighbours:
            raise ConfigError("remain_sampling=narrow needs the task's class neighbours (remain.meta['neighbours'])")
        close = [c for c in neighbours if c in classes][:NARROW_CLASSES]
        sizes = [total // len(close) + (1 if i < total % len(close) else 0) for i in range(len(close))]
        parts = [_take(torch.nonzero(labels == c).flatten(), n, generator, f"class {c}") for c, n in zip(close, sizes)]
        return torch.cat(parts)
    if mode == "uniform":
        return _take(torch.arange(len(labels)), total, generator, "the remaining classes")
    raise ConfigError(f"remain_sampling must be balanced|narrow|uniform, not {mode!r}")


def remain_subset(remain: UnlearnData, mode: RemainSampling, generator: torch.Generator, per_class: int | None = None) -> UnlearnData:
    """The remain subset for a task: class-structured (groups = labels) or a concept task's D_r."""
    is_class = remain.groups is not None and remain.keys and isinstance(remain.keys[0], int)
    if is_class:
        n = per_class or int(remain.meta.get("per_class", 50))
        return remain.subset(class_subset_indices(remain.groups, n, mode, generator, remain.meta.get("neighbours")))
    if mode == "narrow":
        idx = remain.meta.get("narrow_indices")
        if idx is None:
            raise ConfigError("remain_sampling=narrow on a concept/style task needs remain.meta['narrow_indices'] from the task")
        return remain.subset(idx)
    if mode not in ("balanced", "uniform"):
        raise ConfigError(f"remain_sampling must be balanced|narrow|uniform, not {mode!r}")
    return remain
