"""Forget / remain sets as handed to methods."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Sequence

import torch
from torch import Tensor


@dataclass
class UnlearnData:
    """Training examples in the denoiser's space with their condition keys.

    keys: class label (int) or prompt (str) per example.
    paired_keys: per example, the condition a relabelling method maps it to (SalUn's c'):
      the paired safe prompt for concepts; None for class tasks (methods derive c' themselves).
    groups: per example, the class / prompt-template group, used for balanced or narrow sampling.
    paired_with_forget: (remain sets) example i is the concept-free twin of forget example i — the
      tasks build D_r and D_f index-aligned, and the RGD SD reference zips the two loaders so each
      forget example meets its twin; `paired_batches` keeps that pairing. A subset loses it.
    """

    x: Tensor
    keys: list
    paired_keys: list | None = None
    groups: Tensor | None = None
    meta: dict = field(default_factory=dict)
    paired_with_forget: bool = False

    def __post_init__(self) -> None:
        if len(self.keys) != self.x.shape[0]:
            raise ValueError(f"{self.x.shape[0]} examples but {len(self.keys)} keys")
        if self.paired_keys is not None and len(self.paired_keys) != len(self.keys):
            raise ValueError("paired_keys must align with keys")

    def __len__(self) -> int:
        return len(self.keys)

    def subset(self, idx: Sequence[int] | Tensor) -> "UnlearnData":
        idx = torch.as_tensor(idx, dtype=torch.long)
        il = idx.tolist()
        return UnlearnData(
            x=self.x[idx],
            keys=[self.keys[i] for i in il],
            paired_keys=None if self.paired_keys is None else [self.paired_keys[i] for i in il],
            groups=None if self.groups is None else self.groups[idx],
            meta=dict(self.meta),
        )

    def batches(self, batch_size: int, generator: torch.Generator) -> Iterator["UnlearnData"]:
        """Endless shuffled minibatches (reshuffled every epoch)."""
        n = len(self)
        if n == 0:
            raise ValueError("cannot draw batches from an empty set")
        while True:
            yield from self.take(torch.randperm(n, generator=generator), batch_size)

    def chunks(self, batch_size: int) -> Iterator["UnlearnData"]:
        """One ordered pass (full-set gradients, saliency)."""
        for i in range(0, len(self), batch_size):
            yield self.subset(range(i, min(i + batch_size, len(self))))

    def take(self, perm: Tensor, batch_size: int) -> Iterator["UnlearnData"]:
        """The full batches of one epoch in the order `perm` gives (a short last batch is dropped)."""
        for i in range(0, len(perm), batch_size):
            chunk = perm[i : i + batch_size]
            if len(chunk) < min(batch_size, len(perm)):
                break
            yield self.subset(chunk)

    def to(self, device) -> "UnlearnData":
        self.x = self.x.to(device)
        return self


def paired_batches(
    forget: UnlearnData, remain: UnlearnData, batch_size: int, generator: torch.Generator
) -> Iterator[tuple[UnlearnData, UnlearnData]]:
    """Endless (forget batch, remain batch) pairs.

    When `remain.paired_with_forget`, one permutation per epoch indexes both sets, so forget example i
    always meets its twin i (the SD reference's zip of two aligned loaders; it iterates in file order,
    we shuffle the pairs). Otherwise the two sets are shuffled independently, as `batches` does.
    """
    if not remain.paired_with_forget:
        yield from zip(forget.batches(batch_size, generator), remain.batches(batch_size, generator))
        return
    n = len(forget)
    if len(remain) != n:
        raise ValueError(f"remain set is marked paired with the forget set but has {len(remain)} examples, not {n}")
    if n == 0:
        raise ValueError("cannot draw batches from an empty set")
    while True:
        perm = torch.randperm(n, generator=generator)
        yield from zip(forget.take(perm, batch_size), remain.take(perm, batch_size))
