"""Training a class-conditional diffusion model from scratch (pretrain and Retrain share it)."""
from __future__ import annotations

import copy
import math
import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from bench.core.adapters.class_conditional import ClassConditionalModel
from bench.core.atomic import write_atomic
from bench.core.denoising import simple_loss


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
    autocast_dtype: torch.dtype | None = None,
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 0,
) -> ClassConditionalModel:
    """Deterministic DDPM training with label dropout, lr warm-up + decay and an EMA of the weights.

    `recipe.extra` may ask for what larger recipes need (absent keys keep the mini recipes' loop):
    `hflip` (random horizontal flip per example), `grad_clip` (global norm), `lr_schedule`
    ("cosine", the default, or "constant" after warm-up as in DDPM). Runtime-only options:
    `autocast_dtype` (e.g. torch.bfloat16 on GPU), and `checkpoint_dir` + `checkpoint_every`, which
    save the full training state (weights, EMA, optimiser, lr schedule, RNG states) every N steps
    and resume from it, so an interrupted run ends with the same weights as an uninterrupted one.
    """
    device = torch.device(device)
    model = ClassConditionalModel.from_config(recipe.unet, recipe.scheduler, class_names, seed=recipe.seed).to(device)
    ema = copy.deepcopy(model.denoiser).requires_grad_(False)
    opt = torch.optim.Adam(model.denoiser.parameters(), lr=recipe.lr)
    hflip = bool(recipe.extra.get("hflip", False))
    grad_clip = recipe.extra.get("grad_clip")
    lr_schedule = recipe.extra.get("lr_schedule", "cosine")
    if lr_schedule not in ("cosine", "constant"):
        raise ValueError(f"lr_schedule must be cosine or constant, not {lr_schedule!r}")
    if lr_schedule == "constant":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / recipe.warmup))
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt,
            lambda s: min(1.0, (s + 1) / recipe.warmup) * 0.5 * (1 + math.cos(math.pi * min(s, recipe.steps) / recipe.steps)),
        )
    gen = torch.Generator().manual_seed(recipe.seed)
    x, labels = x.to(device), labels.to(device)
    n = x.shape[0]
    start = 0
    if checkpoint_dir is not None:
        start = _resume(Path(checkpoint_dir), recipe, model, ema, opt, sched, gen)
    model.denoiser.train()
    for step in range(start, recipe.steps):
        idx = torch.randint(0, n, (recipe.batch_size,), generator=gen).to(device)
        y = labels[idx].clone()
        drop = (torch.rand(len(idx), generator=gen) < recipe.p_uncond).to(device)
        y[drop] = model.null_class
        xb = x[idx]
        if hflip:
            flip = (torch.rand(len(idx), generator=gen) < 0.5).to(device)
            xb = torch.where(flip.view(-1, 1, 1, 1), xb.flip(-1), xb)
        if autocast_dtype is None:
            loss = simple_loss(model, xb, y, gen)
        else:
            with torch.autocast(device.type, dtype=autocast_dtype):
                loss = simple_loss(model, xb, y, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(model.denoiser.parameters(), float(grad_clip))
        opt.step()
        sched.step()
        ema_update(ema, model.denoiser, recipe.ema_decay)
        if checkpoint_dir is not None and checkpoint_every and (step + 1) % checkpoint_every == 0:
            _save_state(Path(checkpoint_dir), step + 1, recipe, model, ema, opt, sched, gen)
        if progress is not None:
            progress(step, float(loss))
    model.denoiser = ema.requires_grad_(True).train()
    return model


STATE_FILE = "train_state.pt"


def _save_state(directory: Path, step: int, recipe, model, ema, opt, sched, gen) -> None:
    """Full training state, written atomically (a crash mid-write leaves the previous state)."""
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        "step": step,
        "recipe": recipe.to_dict(),
        "model": model.denoiser.state_dict(),
        "ema": ema.state_dict(),
        "opt": opt.state_dict(),
        "sched": sched.state_dict(),
        "gen": gen.get_state(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    write_atomic(directory / STATE_FILE, lambda f: torch.save(state, f))


def _resume(directory: Path, recipe, model, ema, opt, sched, gen) -> int:
    """Restore the state saved by `_save_state` (same recipe only); returns the step to go on from."""
    path = directory / STATE_FILE
    if not path.exists():
        return 0
    try:  # tensors and plain containers only: a state file never runs code on load
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ValueError(f"training state at {path} holds more than tensors and plain values; refusing to load it ({str(exc).splitlines()[0]})") from None
    if state["recipe"] != recipe.to_dict():
        raise ValueError(f"training state at {path} belongs to another recipe; use a fresh checkpoint_dir")
    model.denoiser.load_state_dict(state["model"])
    ema.load_state_dict(state["ema"])
    opt.load_state_dict(state["opt"])
    sched.load_state_dict(state["sched"])
    gen.set_state(state["gen"])
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["step"])
