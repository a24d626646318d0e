"""Diffusion losses shared by the methods (pure functions of model outputs)."""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from bench.adapters.base import DiffusionModel

Truncation = Literal["none", "elementwise", "normalize"]


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


def truncated_forget_loss(sq_err: Tensor, truncation: Truncation, threshold: float) -> Tensor:
    """Forget-loss value to *ascend*, optionally truncated as in the RGD reference code.

    elementwise: mean(min((ε̂−ε)², m))  (CIFAR code) — elements past m stop contributing gradient;
    normalize:   L / L.detach() when L > m (SD code) — gradient magnitude capped, value becomes 1.
    """
    if truncation == "none":
        return sq_err.mean()
    if truncation == "elementwise":
        return torch.clamp(sq_err, max=threshold).mean()
    if truncation == "normalize":
        loss = sq_err.mean()
        return loss / loss.detach() if float(loss.detach()) > threshold else loss
    raise ValueError(f"unknown forget_truncation {truncation!r}; use none|elementwise|normalize")
