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


def antithetic_timesteps(n: int, num_train_timesteps: int, generator: torch.Generator, device=None) -> Tensor:
    """n training timesteps drawn in antithetic pairs (t, T−1−t), as the DDIM/SA/SalUn class DDPM code does.

    Same marginal (uniform on 0..T−1) as independent draws, lower variance; ⌈n/2⌉ draws from `generator`.
    """
    t = torch.randint(0, num_train_timesteps, (n // 2 + 1,), generator=generator)
    return torch.cat([t, num_train_timesteps - 1 - t])[:n].to(device)


def drop_condition(cond: Tensor, null: Tensor, p: float, generator: torch.Generator) -> Tensor:
    """Classifier-free-guidance condition dropout: each row of `cond` becomes `null` with probability p.

    Works for class labels (1-D) and text embeddings (N×L×D) alike. p = 0 returns `cond` and draws nothing.
    """
    if p <= 0:
        return cond
    drop = (torch.rand(cond.shape[0], generator=generator) < p).to(cond.device)
    return torch.where(drop.view(-1, *([1] * (cond.ndim - 1))), null.to(cond.dtype), cond)


def esd_target(e_0: Tensor, e_p: Tensor, negative_guidance: float) -> Tensor:
    """ESD's regression target e_0 − η·(e_p − e_0) (frozen model's unconditional / conditional noise).

    η = 1 gives 2·e_0 − e_p: the conditional prediction reflected through the unconditional one.
    """
    return e_0 - negative_guidance * (e_p - e_0)
