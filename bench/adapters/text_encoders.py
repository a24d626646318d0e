"""Text encoders for the text-to-image adapter.

Contract: `encode(prompts) -> Tensor[B, L, D]` of per-token hidden states (what the UNet's
cross-attention reads), frozen, on the encoder's device; `name` identifies it in provenance.
Stable Diffusion uses transformers' CLIPTextModel; the mini text world uses an open_clip model.
"""
from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import torch
from torch import Tensor


@runtime_checkable
class TextEncoder(Protocol):
    name: str

    def encode(self, prompts: Sequence[str]) -> Tensor:
        ...

    def to(self, device: torch.device | str) -> "TextEncoder":
        ...
