"""Small pieces every gradient-based method shares: parameter selection, optimiser, finiteness."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator

import torch
from torch import nn

from bench.core.adapters.base import DiffusionModel
from bench.core.errors import ConfigError, NonFiniteLossError


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
    """Adam over fp32 master weights; half-precision weights are refused (updates of ~1e-5 vanish there)."""
    half = sorted({str(p.dtype) for p in params if p.dtype != torch.float32})
    if half:
        raise ConfigError(
            f"refusing to train {', '.join(half)} weights: the optimiser needs fp32 master weights "
            "(load the model in float32; bf16/fp16 compute comes from the fast paths' autocast)"
        )
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Run a pass with dropout off (mask passes, sampling during training), then restore the mode."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def assert_finite_weights(model: DiffusionModel, method: str) -> None:
    for name, p in model.denoiser.named_parameters():
        if not torch.isfinite(p).all():
            raise NonFiniteLossError(f"method {method!r} left non-finite values in parameter {name!r}")
