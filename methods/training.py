"""Small pieces every gradient-based method shares: parameter selection, optimiser, finiteness."""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from bench.adapters.base import DiffusionModel
from bench.errors import NonFiniteLossError


def select_trainable(model: DiffusionModel, names: Iterable[str]) -> list[nn.Parameter]:
    """Freeze everything except `names`; return the trainable parameters in model order."""
    keep = set(names)
    params = []
    for name, p in model.denoiser.named_parameters():
        p.requires_grad_(name in keep)
        if name in keep:
            params.append(p)
    if not params:
        raise ValueError("no trainable parameters selected")
    return params


def adam(params: list[nn.Parameter], lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


def assert_finite_weights(model: DiffusionModel, method: str) -> None:
    for name, p in model.denoiser.named_parameters():
        if not torch.isfinite(p).all():
            raise NonFiniteLossError(f"method {method!r} left non-finite values in parameter {name!r}")
