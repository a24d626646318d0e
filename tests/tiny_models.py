"""Tiny randomly initialised class-conditional models and data for behavioural method tests.

Built from a diffusers config through the same adapter as the shipped checkpoints, so a method sees
exactly the interface it sees on CIFAR-10 or mini-digits, in milliseconds.
"""
from __future__ import annotations

import torch
from diffusers import DDPMScheduler, UNet2DModel

from bench.core.adapters.class_conditional import ClassConditionalModel
from bench.core.context import RunContext
from bench.core.data import UnlearnData

NUM_CLASSES = 3


def tiny_class_model(seed: int = 0, dropout: float = 0.0) -> ClassConditionalModel:
    """3 classes (+ null), 1×8×8 pixels, ~30k weights, 100 training timesteps."""
    torch.manual_seed(seed)
    unet = UNet2DModel(
        sample_size=8, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 16),
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=4, num_class_embeds=NUM_CLASSES + 1, dropout=dropout,
    )
    return ClassConditionalModel(unet, DDPMScheduler(num_train_timesteps=100), [f"c{i}" for i in range(NUM_CLASSES)])


def class_data(per_class: int = 12, target: int = 0, seed: int = 0) -> tuple[UnlearnData, UnlearnData]:
    """(forget, remain): class c's images are a class-specific pattern plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    patterns = torch.randn(NUM_CLASSES, 1, 8, 8, generator=g).clamp(-1, 1)

    def images(c: int) -> torch.Tensor:
        return (patterns[c] + 0.1 * torch.randn(per_class, 1, 8, 8, generator=g)).clamp(-1, 1)

    others = [c for c in range(NUM_CLASSES) if c != target]
    forget = UnlearnData(x=images(target), keys=[target] * per_class, groups=torch.full((per_class,), target))
    rx = torch.cat([images(c) for c in others])
    labels = [c for c in others for _ in range(per_class)]
    remain = UnlearnData(x=rx, keys=labels, groups=torch.tensor(labels), meta={"per_class": per_class // 2, "neighbours": others})
    return forget, remain


def class_ctx(seed: int = 0) -> RunContext:
    return RunContext(device=torch.device("cpu"), seed=seed, task_kind="class", num_classes=NUM_CLASSES)


@torch.no_grad()
def fixed_loss(model, data: UnlearnData, seed: int = 123) -> float:
    """L_simple on `data` with fixed noise and timesteps, dropout off: comparable before/after a run."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(data.x.shape, generator=g)
    t = torch.randint(0, model.num_train_timesteps, (len(data),), generator=g)
    was = model.denoiser.training
    model.denoiser.eval()
    pred = model.predict_noise(model.add_noise(data.x, noise, t), t, model.condition(data.keys))
    model.denoiser.train(was)
    return float((pred - noise).pow(2).mean())
