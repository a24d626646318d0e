"""Text encoders for the text-to-image adapter.

Contract: `encode(prompts) -> Tensor[B, L, D]` of per-token hidden states (what the UNet's
cross-attention reads), frozen, on the encoder's device; `name` identifies it in provenance.
Stable Diffusion uses transformers' CLIPTextModel; the mini text world uses an open_clip model.

Optional persistence hooks, used by `TextToImageModel.save/load`: `save(dir)` and a classmethod
`load(dir, device)`. An encoder without them cannot be saved inside an adapter directory.
"""
from __future__ import annotations

import gzip
import json
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


def bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def write_clip_tokenizer_files(out: Path, n_merges: int | None = None) -> int:
    """vocab.json + merges.txt in CLIP's layout from open_clip's shipped BPE file; returns the vocab size.

    All 48894 merges give the real 49408-token CLIP vocabulary (random-weight SD-shaped models);
    fewer give a small vocabulary for tiny test models.
    """
    import open_clip

    bpe = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    merges = gzip.open(bpe).read().decode("utf-8").split("\n")[1 : (n_merges or 49152 - 256 - 2) + 1]
    merges = [tuple(m.split()) for m in merges]
    vocab = list(bytes_to_unicode().values())
    vocab = vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]
    out.mkdir(parents=True, exist_ok=True)
    (out / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}))
    (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    return len(vocab)
