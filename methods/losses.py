"""Diffusion losses shared by the methods (pure functions of model outputs)."""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from bench.core.adapters.base import DiffusionModel
from bench.core.denoising import noised_batch

Truncation = Literal["none", "elementwise", "normalize"]
# the remain term: L_simple on D_r (the papers'), or output distillation against the frozen Original
RemainLoss = Literal["simple", "distill"]
TruncationSpace = Literal["x0", "eps"]  # where the element-wise bound m applies


def x0_error_scale(model: DiffusionModel, t: Tensor) -> Tensor:
    """(1 − ᾱ_t)/ᾱ_t per timestep: (x̂₀ − x₀)² = that · (ε̂ − ε)² for x̂₀ = (x_t − √(1−ᾱ_t)·ε̂)/√ᾱ_t."""
    ac = model.noise_scheduler.alphas_cumprod.to(device=t.device, dtype=torch.float64)[t]
    return ((1 - ac) / ac).float()


def truncated_forget_loss(
    sq_err: Tensor, truncation: Truncation, threshold: float, x0_scale: Tensor | None = None
) -> Tensor:
    """Forget-loss value to *ascend*, optionally truncated as in the RGD reference code.

    elementwise: mean(min((ε̂−ε)², m / s_t)) — an element whose error exceeds the bound stops
        contributing gradient. With `x0_scale` s_t = (1−ᾱ_t)/ᾱ_t (one per example) the bound is the
        reference's: its CIFAR code clamps the EDM denoiser's x₀-space error, min((x̂₀−x₀)², m), and
        (x̂₀−x₀)² = s_t·(ε̂−ε)²; without it (s_t = 1) m bounds the ε-space error itself.
    normalize: L / ‖L‖ once L > m (SD code): the reference divides by the NON-detached norm, so the
        value is 1 and the gradient is exactly zero there — ascent stops and the step is pure remain
        descent. Here that is `0·L + 1` (same value, an exactly zero gradient, no 1/L − 1/L rounding).
    """
    if truncation == "none":
        return sq_err.mean()
    if truncation == "elementwise":
        if x0_scale is None:
            return torch.clamp(sq_err, max=threshold).mean()
        bound = threshold / x0_scale.to(sq_err.device, sq_err.dtype).view(-1, *([1] * (sq_err.ndim - 1)))
        return torch.minimum(sq_err, bound).mean()
    if truncation == "normalize":
        loss = sq_err.mean()
        return loss * 0.0 + 1.0 if float(loss.detach()) > threshold else loss
    raise ValueError(f"unknown forget_truncation {truncation!r}; use none|elementwise|normalize")


def forget_loss(
    model: DiffusionModel,
    x0: Tensor,
    cond: Tensor,
    generator: torch.Generator,
    truncation: Truncation,
    threshold: float,
    space: TruncationSpace = "x0",
) -> Tensor:
    """L_f on one forget batch, truncated as `truncation` says, in `space` (x0: the reference's; eps)."""
    if space not in ("x0", "eps"):
        raise ValueError(f"truncation_space must be x0|eps, not {space!r}")
    x_t, t, noise = noised_batch(model, x0, generator)
    sq = (model.predict_noise(x_t, t, cond) - noise).pow(2)
    scale = x0_error_scale(model, t) if truncation == "elementwise" and space == "x0" else None
    return truncated_forget_loss(sq, truncation, threshold, scale)


def antithetic_timesteps(n: int, num_train_timesteps: int, generator: torch.Generator, device=None) -> Tensor:
    """n training timesteps drawn in antithetic pairs (t, T−1−t), as the DDIM/SA/SalUn class DDPM code does.

    Same marginal (uniform on 0..T−1) as independent draws, lower variance; n//2 + 1 draws from
    `generator` (the reference's count: one more than needed for even n).
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


def remain_teacher(model: DiffusionModel, remain_loss: RemainLoss) -> DiffusionModel | None:
    """The frozen Original that `remain_loss: distill` matches, copied before any update; None for "simple"."""
    if remain_loss not in ("simple", "distill"):
        raise ValueError(f"remain_loss must be simple|distill, not {remain_loss!r}")
    return model.frozen_copy() if remain_loss == "distill" else None


def remain_target(teacher: DiffusionModel | None, x_t: Tensor, t: Tensor, cond: Tensor, noise: Tensor) -> Tensor:
    """What the remain prediction regresses to: the data noise ε (L_simple), or the frozen Original's
    prediction ε_θ*(x_t, t, c) on the very same x_t, t and condition (distillation: keep Original's
    outputs on D_r, the integrity the leaderboard's retention column measures)."""
    if teacher is None:
        return noise
    with torch.no_grad():
        return teacher.predict_noise(x_t, t, cond).to(noise.dtype)


def remain_loss(model: DiffusionModel, x0: Tensor, cond: Tensor, generator: torch.Generator,
                teacher: DiffusionModel | None = None) -> Tensor:
    """The remain term on one batch, element-mean: L_simple when `teacher` is None (the same draws and
    value as bench.core.denoising.simple_loss), else mean (ε_θ(x_t, t, c) − ε_θ*(x_t, t, c))²."""
    x_t, t, noise = noised_batch(model, x0, generator)
    pred = model.predict_noise(x_t, t, cond)
    return (pred - remain_target(teacher, x_t, t, cond, noise)).pow(2).mean()
