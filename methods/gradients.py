"""Gradient vector helpers for RGD (restricted gradient descent).

Flattening is global over ALL parameters (one vector), as PROTOCOL.md
specifies: the projection is defined on the full parameter gradient, not per layer.
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

_EPS = 1e-12


def flatten_grads(params: Iterable[nn.Parameter]) -> torch.Tensor:
    """Concatenate `.grad` of every parameter (zeros where None) into one vector."""
    parts = []
    for p in params:
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        parts.append(g.reshape(-1))
    return torch.cat(parts)


def unflatten_into_grads(vec: torch.Tensor, params: Iterable[nn.Parameter]) -> None:
    """Write a global vector back into the parameters' `.grad` fields."""
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = vec[offset:offset + n].view_as(p).clone()
        offset += n
    if offset != vec.numel():
        raise ValueError(f"vector has {vec.numel()} entries, parameters {offset}")


def restricted_update(g_f: torch.Tensor, g_r: torch.Tensor, lam: float) -> torch.Tensor:
    """d = delta_f + lam * delta_r; projections only when <g_f, g_r> < 0.

    Both deltas are computed from the ORIGINAL vectors; zero norms skip
    the corresponding projection (nothing to project onto).
    """
    dot = torch.dot(g_f, g_r)
    if dot >= 0:
        return g_f + lam * g_r
    nr2 = torch.dot(g_r, g_r)
    nf2 = torch.dot(g_f, g_f)
    delta_f = g_f - (dot / nr2) * g_r if nr2 > _EPS else g_f
    delta_r = g_r - (dot / nf2) * g_f if nf2 > _EPS else g_r
    return delta_f + lam * delta_r
