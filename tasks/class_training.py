"""Training a class-conditional diffusion model from scratch (pretrain and Retrain share it)."""
from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
from torch import Tensor

from bench.adapters.class_conditional import ClassConditionalModel
from methods.losses import simple_loss


@dataclass
class ClassDiffusionRecipe:
    """Everything that determines a class-conditional base model (hashed into provenance)."""

    unet: dict
    scheduler: dict
    steps: int
    batch_size: int
    lr: float
    p_uncond: float = 0.1  # label dropout for classifier-free guidance
    ema_decay: float = 0.999
    warmup: int = 100
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@torch.no_grad()
def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """Exponential moving average of the weights (the pretrain recipes keep the EMA, not the last step)."""
    for pe, p in zip(ema.parameters(), model.parameters()):
        pe.lerp_(p, 1 - decay)


def train_class_conditional(
    recipe: ClassDiffusionRecipe,
    x: Tensor,
    labels: Tensor,
    class_names: list[str],
    device: torch.device | str = "cpu",
    progress: Callable[[int, float], None] | None = None,
) -> ClassConditionalModel:
    """Deterministic DDPM training with label dropout, cosine lr decay and an EMA of the weights."""
    device = torch.device(device)
    model = ClassConditionalModel.from_config(recipe.unet, recipe.scheduler, class_names, seed=recipe.seed).to(device)
    ema = copy.deepcopy(model.denoiser).requires_grad_(False)
    opt = torch.optim.Adam(model.denoiser.parameters(), lr=recipe.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: min(1.0, (s + 1) / recipe.warmup) * 0.5 * (1 + math.cos(math.pi * min(s, recipe.steps) / recipe.steps)),
    )
    gen = torch.Generator().manual_seed(recipe.seed)
    x, labels = x.to(device), labels.to(device)
    n = x.shape[0]
    model.denoiser.train()
    for step in range(recipe.steps):
        idx = torch.randint(0, n, (recipe.batch_size,), generator=gen).to(device)
        y = labels[idx].clone()
        drop = (torch.rand(len(idx), generator=gen) < recipe.p_uncond).to(device)
        y[drop] = model.null_class
        loss = simple_loss(model, x[idx], y, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        ema_update(ema, model.denoiser, recipe.ema_decay)
        if progress is not None:
            progress(step, float(loss))
    model.denoiser = ema.requires_grad_(True).train()
    return model
