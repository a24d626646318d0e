"""Class-conditional pixel-space model: diffusers UNet2DModel with a class embedding.

The class embedding has K+1 rows; row K is the null class used for classifier-free guidance.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import torch
from diffusers import DDPMScheduler, UNet2DModel
from torch import Tensor

from bench.core.adapters.base import DiffusionModel
from bench.core.errors import MissingWeightsError


class ClassConditionalModel(DiffusionModel):
    kind = "class"

    def __init__(self, unet: UNet2DModel, scheduler: DDPMScheduler, class_names: Sequence[str]):
        self.denoiser = unet
        self.noise_scheduler = scheduler
        self.class_names = list(class_names)
        cfg = unet.config
        size = cfg.sample_size if isinstance(cfg.sample_size, int) else cfg.sample_size[0]
        self.sample_shape = (cfg.in_channels, size, size)
        if cfg.num_class_embeds != self.num_classes + 1:
            raise ValueError(
                f"UNet has {cfg.num_class_embeds} class embeddings; expected {self.num_classes}+1 (null class)"
            )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def null_class(self) -> int:
        return self.num_classes

    def condition(self, keys: Sequence) -> Tensor:
        labels = torch.as_tensor([int(k) for k in keys], dtype=torch.long)
        if len(labels) and (labels.min() < 0 or labels.max() > self.null_class):
            raise ValueError(f"class labels must lie in 0..{self.num_classes} (null = {self.null_class})")
        return labels.to(self.device)

    def null_condition(self, n: int) -> Tensor:
        return torch.full((n,), self.null_class, dtype=torch.long, device=self.device)

    def predict_noise(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        if t.ndim == 0:
            t = t.expand(x_t.shape[0])
        return self._denoise(x_t, t, class_labels=cond).sample.to(x_t.dtype)

    # -- persistence: the same save_pretrained / from_pretrained path for every checkpoint ----
    def save(self, path) -> None:
        path = Path(path)
        self.denoiser.save_pretrained(path / "unet")
        self.noise_scheduler.save_pretrained(path / "scheduler")
        (path / "unlearn_bench.json").write_text(
            json.dumps({"kind": self.kind, "class_names": self.class_names}, indent=2) + "\n"
        )

    @classmethod
    def load(cls, path, device="cpu") -> "ClassConditionalModel":
        """Load a saved checkpoint; read from disk once per process (bench/core/adapters/model_cache.py)."""
        from bench.core.adapters.model_cache import cached_load

        return cached_load("class", path, device, (), lambda: cls._load_uncached(path, device))

    @classmethod
    def _load_uncached(cls, path, device="cpu") -> "ClassConditionalModel":
        path = Path(path)
        index = path / "unlearn_bench.json"
        if not index.exists() or not (path / "unet").exists():
            raise MissingWeightsError(f"class-conditional checkpoint not found at {path}")
        meta = json.loads(index.read_text())
        unet = UNet2DModel.from_pretrained(path / "unet").to(device)
        sched = DDPMScheduler.from_pretrained(path / "scheduler")
        return cls(unet, sched, meta["class_names"])

    @classmethod
    def from_config(cls, unet_config: dict, scheduler_config: dict, class_names: Sequence[str], seed: int = 0):
        """Randomly initialised model (pretraining, retraining, tests)."""
        torch.manual_seed(seed)
        unet = UNet2DModel(**{**unet_config, "num_class_embeds": len(class_names) + 1})
        return cls(unet, DDPMScheduler(**scheduler_config), class_names)
