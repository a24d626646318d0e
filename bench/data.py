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
    """

    x: Tensor
    keys: list
    paired_keys: list | None = None
    groups: Tensor | None = None
    meta: dict = field(default_factory=dict)

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
            perm = torch.randperm(n, generator=generator)
            for i in range(0, n, batch_size):
                chunk = perm[i : i + batch_size]
                if len(chunk) < min(batch_size, n):
                    break
                yield self.subset(chunk)

    def chunks(self, batch_size: int) -> Iterator["UnlearnData"]:
        """One ordered pass (full-set gradients, saliency)."""
        for i in range(0, len(self), batch_size):
            yield self.subset(range(i, min(i + batch_size, len(self))))

    def to(self, device) -> "UnlearnData":
        self.x = self.x.to(device)
        return self
