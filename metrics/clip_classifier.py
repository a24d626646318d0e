"""A CLIP judge as a zero-shot image classifier (RGD's UA/RA protocol on CIFAR-10).

Labels are the K class prompts plus extra labels such as "random noise": an image the judge
calls noise has a predicted index ≥ K and so counts as wrong for every class.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from metrics.clip_judge import ClipJudge


class ZeroShotClassifier:
    """images in [0, 1] -> cosine logits over `prompt.format(class)` for each class + `extra_labels`."""

    def __init__(self, judge: ClipJudge, class_names: Sequence[str], prompt: str = "a photo of a {}.",
                 extra_labels: Sequence[str] = ("random noise",)):
        self.judge = judge
        self.labels = [prompt.format(c) for c in class_names] + list(extra_labels)
        self.text = judge.encode_texts(self.labels)
        self.name = f"CLIP {judge.name} zero-shot, {len(self.labels)} labels"

    def features(self, images01: Tensor) -> Tensor:
        """L2-normalised image embeddings (also used to order classes by similarity)."""
        return self.judge.encode_images(images01)

    @torch.no_grad()
    def __call__(self, images01: Tensor) -> Tensor:
        return self.features(images01).float() @ self.text.float().T
