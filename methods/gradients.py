"""Gradient algebra for RGD (restricted gradient descent).

The projection is defined on the gradient of ALL parameters seen as one global vector
(PROTOCOL.md), not per layer. `restricted_update` states it on flat vectors; the training loop
uses `restricted_update_lists`, the same arithmetic with inner products summed over the
per-parameter tensors, so Stable Diffusion does not pay for two extra 860M-entry flat copies.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import torch
from torch import Tensor, nn

_EPS = 1e-12


def flatten_grads(params: Iterable[nn.Parameter]) -> Tensor:
    """Concatenate `.grad` of every parameter (zeros where None) into one vector."""
    parts = []
    for p in params:
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        parts.append(g.reshape(-1))
    return torch.cat(parts)


def unflatten_into_grads(vec: Tensor, params: Iterable[nn.Parameter]) -> None:
    """Write a global vector back into the parameters' `.grad` fields."""
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = vec[offset:offset + n].view_as(p).clone()
        offset += n
    if offset != vec.numel():
        raise ValueError(f"vector has {vec.numel()} entries, parameters {offset}")


def projection_coefficients(dot: float, nf2: float, nr2: float) -> tuple[float, float]:
    """(a, b) with δ_f = g_f − a·g_r and δ_r = g_r − b·g_f; zero unless the gradients conflict.

    Both coefficients come from the ORIGINAL vectors; a zero norm skips its projection
    (there is nothing to project onto).
    """
    if dot >= 0:
        return 0.0, 0.0
    a = dot / nr2 if nr2 > _EPS else 0.0
    b = dot / nf2 if nf2 > _EPS else 0.0
    return a, b


def restricted_update(g_f: Tensor, g_r: Tensor, lam: float) -> Tensor:
    """d = δ_f + λ·δ_r, projections only when ⟨g_f, g_r⟩ < 0 (flat-vector statement of RGD)."""
    a, b = projection_coefficients(float(torch.dot(g_f, g_r)), float(torch.dot(g_f, g_f)), float(torch.dot(g_r, g_r)))
    delta_f = g_f - a * g_r
    delta_r = g_r - b * g_f
    return delta_f + lam * delta_r


@dataclass
class UpdateStats:
    dot: float
    cosine: float
    conflict: bool
    norm_f: float
    norm_r: float


def _sum_dot(xs: Sequence[Tensor], ys: Sequence[Tensor]) -> float:
    # float64 accumulation: a global inner product over ~1e9 entries must not depend on chunking
    return float(sum(torch.dot(x.reshape(-1).double(), y.reshape(-1).double()) for x, y in zip(xs, ys)))


def restricted_update_lists(g_f: Sequence[Tensor], g_r: Sequence[Tensor], lam: float) -> tuple[list[Tensor], UpdateStats]:
    """The global restricted update on per-parameter gradient lists (same result as flattening).

    Returns the update d (one tensor per parameter) and the statistics of the step.
    """
    dot, nf2, nr2 = _sum_dot(g_f, g_r), _sum_dot(g_f, g_f), _sum_dot(g_r, g_r)
    a, b = projection_coefficients(dot, nf2, nr2)
    # d = (1 − λb)·g_f + (λ − a)·g_r
    cf, cr = 1.0 - lam * b, lam - a
    d = [cf * f + cr * r for f, r in zip(g_f, g_r)]
    cos = dot / max((nf2 * nr2) ** 0.5, _EPS)
    return d, UpdateStats(dot=dot, cosine=cos, conflict=dot < 0, norm_f=nf2**0.5, norm_r=nr2**0.5)


def grads_of(params: Sequence[nn.Parameter]) -> list[Tensor]:
    """Detached copies of the current gradients (zeros where a parameter got none)."""
    return [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in params]
