"""The CLIP judge contract used by alignment, zero-shot UA and retention metrics.

A task puts a judge in `TaskInstance.evaluation.clip_judge`: SD tasks an open_clip ViT-B-32
(laion2b_s34b_b79k) loaded from local weights; mini tasks their shipped mini judge.
"""
from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

from torch import Tensor


@runtime_checkable
class ClipJudge(Protocol):
    name: str  # goes into column names, e.g. "ViT-B-32 laion2b_s34b_b79k"

    def encode_images(self, images01: Tensor) -> Tensor:
        """Images in [0, 1], N×3×H×W -> L2-normalised embeddings N×D."""

    def encode_texts(self, texts: Sequence[str]) -> Tensor:
        """Prompts -> L2-normalised embeddings N×D."""
