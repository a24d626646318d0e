"""DDPM's denoising loss L_simple: what pre-training, Retrain and every method's remain term minimise
(the kernel's, since the tasks' training loops and the methods both use it)."""
from __future__ import annotations

import torch
from torch import Tensor

from bench.core.adapters.base import DiffusionModel


def noised_batch(model: DiffusionModel, x0: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """(x_t, t, noise) for a uniformly drawn training timestep per example."""
    noise = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
    t = model.random_timesteps(x0.shape[0], generator)
    return model.add_noise(x0, noise, t), t, noise


def simple_loss_terms(model: DiffusionModel, x0: Tensor, cond: Tensor, generator: torch.Generator) -> Tensor:
    """Per-element squared error (ε̂ − ε)² of the noise prediction (DDPM's L_simple before reduction)."""
    x_t, t, noise = noised_batch(model, x0, generator)
    return (model.predict_noise(x_t, t, cond) - noise).pow(2)


def simple_loss(model: DiffusionModel, x0: Tensor, cond: Tensor, generator: torch.Generator) -> Tensor:
    """L_simple with element-mean reduction."""
    return simple_loss_terms(model, x0, cond, generator).mean()
