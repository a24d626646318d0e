"""Text encoders for the text-to-image adapter.

Contract: `encode(prompts) -> Tensor[B, L, D]` of per-token hidden states (what the UNet's
cross-attention reads), frozen, on the encoder's device; `name` identifies it in provenance.
Stable Diffusion uses transformers' CLIPTextModel; the mini text world uses an open_clip model.

Optional persistence hooks, used by `TextToImageModel.save/load`: `save(dir)` and a classmethod
`load(dir, device)`. An encoder without them cannot be saved inside an adapter directory.
"""
from __future__ import annotations

from pathlib import Path
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


class HFCLIPTextEncoder:
    """transformers CLIPTokenizer + CLIPTextModel, last hidden state, padded to max_length (SD 1.x)."""

    def __init__(self, tokenizer, model, name: str = "CLIPTextModel", max_length: int | None = None):
        self.tokenizer = tokenizer
        self.model = model.eval().requires_grad_(False)
        self.name = name
        self.max_length = int(max_length or min(tokenizer.model_max_length, 77))

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> Tensor:
        tokens = self.tokenizer(
            list(prompts), padding="max_length", max_length=self.max_length, truncation=True, return_tensors="pt"
        )
        return self.model(tokens.input_ids.to(self.device))[0]

    def to(self, device) -> "HFCLIPTextEncoder":
        self.model.to(device)
        return self

    # -- persistence in the SD layout: <root>/tokenizer and <root>/text_encoder -------------
    def save_to(self, root) -> None:
        root = Path(root)
        self.tokenizer.save_pretrained(root / "tokenizer")
        self.model.save_pretrained(root / "text_encoder")

    @classmethod
    def load_from(cls, root, device="cpu", local_files_only: bool = True, name: str | None = None, **kw):
        """Load from an SD-layout directory or (with `subfolder`) a hub id already in the cache."""
        from transformers import CLIPTextModel, CLIPTokenizer

        tokenizer = CLIPTokenizer.from_pretrained(root, subfolder="tokenizer", local_files_only=local_files_only, **kw)
        model = CLIPTextModel.from_pretrained(root, subfolder="text_encoder", local_files_only=local_files_only, **kw)
        return cls(tokenizer, model.to(device), name=name or f"CLIPTextModel({Path(str(root)).name})")
