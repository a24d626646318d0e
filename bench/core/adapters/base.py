"""The one object methods touch: a diffusion model seen through a small, uniform interface.

Methods only use `condition`, `null_condition`, `predict_noise`, `add_noise`, the DDIM loop and
the named parameter groups, so the same method code runs on pixel class-conditional models and
on latent text-to-image models.
"""
from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from typing import Sequence

import torch
from diffusers import DDIMScheduler, DDPMScheduler, PNDMScheduler
from torch import Tensor, nn

from bench.core import fast as _fast
from bench.core.errors import ConfigError
from bench.core.fast import FastPaths, autocast_context
from bench.core.hashing import state_dict_digest

# the evaluation sampler's schedulers by name (DiffusionModel.sampling_scheduler): "ddim" (η = 0) is this suite's; "pndm" is
# what diffusers' StableDiffusionPipeline runs for SD v1.4 (its scheduler_config.json names PNDMScheduler, skip_prk_steps)
SAMPLING_SCHEDULERS = {"ddim": DDIMScheduler, "pndm": PNDMScheduler}
# half-precision sampling by name (DiffusionModel.sample's `dtype`); JSON-friendly, as the sampler dict is a cache key
SAMPLING_DTYPES = {"float16": torch.float16}


def standard_parameter_groups(denoiser: nn.Module) -> dict[str, list[str]]:
    """Named parameter groups of a diffusers UNet, by the module names the papers use.

    cross_attention: `attn2` blocks (ESD-x); time_embedding: timestep MLP; output: final norm + conv;
    conditioning: class embedding or cross-attention, i.e. where the condition enters the network.
    """
    names = [n for n, _ in denoiser.named_parameters()]
    groups = {
        "cross_attention": [n for n in names if ".attn2." in n],
        "time_embedding": [n for n in names if n.startswith("time_embedding.") or n.startswith("time_proj.")],
        "output": [n for n in names if n.startswith("conv_norm_out.") or n.startswith("conv_out.")],
        "class_embedding": [n for n in names if n.startswith("class_embedding.")],
    }
    groups["conditioning"] = groups["cross_attention"] or groups["class_embedding"]
    groups["all"] = names
    return groups


class DiffusionModel(ABC):
    """Adapter base: a trainable denoiser + DDPM training schedule + DDIM sampler (PNDM by name, fp16 copies on request)."""

    kind: str  # "class" | "text"
    denoiser: nn.Module
    noise_scheduler: DDPMScheduler
    sample_shape: tuple[int, int, int]  # (C, H, W) of the space the denoiser works in
    fast_paths: FastPaths | None = None  # run options (bench/core/fast.py); None: plain fp32 eager forward
    _compiled: tuple | None = None  # (denoiser, torch.compile(denoiser)) when fast_paths.compile

    # -- conditioning ---------------------------------------------------------------------
    @abstractmethod
    def condition(self, keys: Sequence) -> Tensor:
        """Condition tensor for class labels (int) or prompts (str); first dim is the batch."""

    @abstractmethod
    def null_condition(self, n: int) -> Tensor:
        """Unconditional condition (null class / empty prompt) for classifier-free guidance."""

    # -- denoiser ------------------------------------------------------------------------
    @abstractmethod
    def predict_noise(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        ...

    def _denoise(self, *args, **kwargs):
        """The denoiser's forward as the run options want it: autocast and/or compiled.

        Adapters call this instead of `self.denoiser(...)`, so methods get the fast paths without
        knowing about them. The compiled wrapper is keyed on the denoiser object: copies (which
        deep-copy the denoiser) compile their own instead of silently calling the original's."""
        fast = self.fast_paths
        fn = self.denoiser
        if fast is not None and fast.compile:
            if self._compiled is None or self._compiled[0] is not self.denoiser:
                self._compiled = (self.denoiser, torch.compile(self.denoiser, **_fast.COMPILE_OPTIONS))
            fn = self._compiled[1]
        with autocast_context(fast, self.device, getattr(self.denoiser, "dtype", torch.float32)):
            return fn(*args, **kwargs)

    def guided_noise(self, x_t: Tensor, t: Tensor, cond: Tensor, guidance: float, uncond: Tensor | None = None) -> Tensor:
        """Classifier-free guidance in one batched forward (cond and null stacked); `uncond`: a negative
        prompt's condition in place of the null one (same batch size as `cond`)."""
        if guidance == 1.0:
            return self.predict_noise(x_t, t, cond)
        n = x_t.shape[0]
        null = self.null_condition(n) if uncond is None else uncond
        if t.ndim == 0:
            t = t.expand(n)
        eps = self.predict_noise(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([null, cond]))
        eps_u, eps_c = eps.chunk(2)
        return eps_u + guidance * (eps_c - eps_u)

    # -- pixels <-> model space ------------------------------------------------------------
    def encode(self, images: Tensor) -> Tensor:
        """Images in [-1, 1] -> the denoiser's space (identity for pixel models)."""
        return images

    def decode(self, x: Tensor) -> Tensor:
        """Denoiser space -> images in [-1, 1]."""
        return x

    # -- forward process -------------------------------------------------------------------
    @property
    def num_train_timesteps(self) -> int:
        return int(self.noise_scheduler.config.num_train_timesteps)

    @property
    def device(self) -> torch.device:
        return next(self.denoiser.parameters()).device

    def add_noise(self, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
        return self.noise_scheduler.add_noise(x0, noise, t)

    def random_timesteps(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        return torch.randint(0, self.num_train_timesteps, (n,), generator=generator, device="cpu").to(self.device)

    def initial_noise(self, seeds: Sequence[int]) -> Tensor:
        """Per-sample seeded noise, so an image does not depend on its batch-mates."""
        noise = [torch.randn(self.sample_shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds]
        return torch.stack(noise).to(self.device)

    # -- sampling --------------------------------------------------------------------------
    def ddim_scheduler(self, steps: int) -> DDIMScheduler:
        sched = DDIMScheduler.from_config(self.noise_scheduler.config)
        sched.set_timesteps(steps, device=self.device)
        return sched

    def sampling_scheduler(self, name: str, steps: int):
        """The sampler's scheduler `name` (SAMPLING_SCHEDULERS) built by diffusers from the checkpoint's own scheduler
        config, as a pipeline builds it: SD v1.4's config keeps `skip_prk_steps`, `steps_offset` and `set_alpha_to_one`
        for PNDM even when it was read as the DDPM training schedule."""
        cls = SAMPLING_SCHEDULERS.get(name)
        if cls is None:
            raise ConfigError(f"sampler scheduler must be one of {', '.join(SAMPLING_SCHEDULERS)}, not {name!r}")
        if cls is DDIMScheduler:
            return self.ddim_scheduler(steps)
        sched = cls.from_config(self.noise_scheduler.config)
        if cls is PNDMScheduler and not sched.config.skip_prk_steps and steps < sched.pndm_order:
            raise ConfigError(f"the pndm scheduler of this checkpoint (its scheduler config has no skip_prk_steps) starts with "
                              f"Runge-Kutta steps, which need at least {sched.pndm_order} sampling steps, not {steps}")
        sched.set_timesteps(steps, device=self.device)
        return sched

    @torch.no_grad()
    def sample_latents(
        self,
        cond: Tensor,
        noise: Tensor,
        steps: int = 50,
        guidance: float = 2.0,
        stop_after: int | None = None,
        uncond: Tensor | None = None,
        scheduler: str = "ddim",
    ) -> Tensor:
        """DDIM (eta=0) from `noise`, or another of SAMPLING_SCHEDULERS by name (its own step rule, every timestep it
        sets: PNDM's 50 steps are 51 UNet calls, as in the pipeline); `stop_after=k` returns the partially denoised x
        after k steps; `uncond`: a negative prompt's condition for classifier-free guidance (default: the null one)."""
        sched = self.sampling_scheduler(scheduler, steps)
        step_kw = {"eta": 0.0} if isinstance(sched, DDIMScheduler) else {}
        x = noise * sched.init_noise_sigma
        for i, t in enumerate(sched.timesteps):
            if stop_after is not None and i >= stop_after:
                break
            eps = self.guided_noise(sched.scale_model_input(x, t), t, cond, guidance, uncond)
            x = sched.step(eps, t, x, **step_kw).prev_sample
        return x

    def cast_for_sampling(self, dtype: torch.dtype) -> "DiffusionModel":
        """A copy whose denoiser computes in `dtype` (weights cast, eval mode), for sampling only: casting the model
        itself would round its fp32 weights for good. The copy's forward skips the fast paths' autocast (it is no
        fp32 model), as a pipeline loaded with `torch_dtype=torch.float16` runs."""
        return self._copy_with_denoiser(copy.deepcopy(self.denoiser).to(dtype).eval())

    @torch.no_grad()
    def sample(
        self,
        keys: Sequence,
        seeds: Sequence[int],
        steps: int = 50,
        guidance: float = 2.0,
        batch_size: int = 256,
        scheduler: str = "ddim",
        dtype: str | None = None,
    ) -> Tensor:
        """Images in [0, 1] (float, CPU), one per (key, seed), generated in batches; `scheduler` names the sampler's
        scheduler (SAMPLING_SCHEDULERS), `dtype` a half precision (SAMPLING_DTYPES) for a cast copy of the model, its
        seeded noise and scheduler arithmetic in that dtype too (a half-precision pipeline's latents); None: as loaded."""
        if dtype is not None and dtype not in SAMPLING_DTYPES:
            raise ConfigError(f"sampler dtype must be one of {', '.join(SAMPLING_DTYPES)} or None, not {dtype!r}")
        model = self if dtype is None else self.cast_for_sampling(SAMPLING_DTYPES[dtype])
        was_training = self.denoiser.training
        model.denoiser.eval()
        out = []
        for i in range(0, len(keys), batch_size):
            k, s = list(keys[i : i + batch_size]), list(seeds[i : i + batch_size])
            noise = model.initial_noise(s)
            if dtype is not None:
                noise = noise.to(SAMPLING_DTYPES[dtype])
            x = model.sample_latents(model.condition(k), noise, steps, guidance, scheduler=scheduler)
            out.append(((model.decode(x).float().clamp(-1, 1) + 1) / 2).cpu())
        self.denoiser.train(was_training)
        return torch.cat(out) if out else torch.empty(0, *self.sample_shape)

    # -- parameters ------------------------------------------------------------------------
    def parameter_groups(self) -> dict[str, list[str]]:
        return standard_parameter_groups(self.denoiser)

    def named_parameters(self) -> dict[str, nn.Parameter]:
        return dict(self.denoiser.named_parameters())

    def _copy_with_denoiser(self, denoiser: nn.Module) -> "DiffusionModel":
        """Shallow copy sharing the frozen parts (text encoder, VAE, scheduler) with its own denoiser."""
        other = copy.copy(self)
        other.denoiser = denoiser
        other._compiled = None
        other._hash_memo = None
        return other

    def frozen_copy(self) -> "DiffusionModel":
        """Independent copy with a frozen denoiser (ESD's θ*, the original for metrics)."""
        return self._copy_with_denoiser(copy.deepcopy(self.denoiser).eval().requires_grad_(False))

    def trainable_copy(self) -> "DiffusionModel":
        """Independent copy to unlearn on, with fp32 master weights: a checkpoint loaded in fp16 (SD's
        `dtype: float16`) is upcast here, since optimiser updates of ~1e-5 vanish in half precision;
        reduced-precision compute comes from the fast paths' autocast instead."""
        return self._copy_with_denoiser(copy.deepcopy(self.denoiser).float().train().requires_grad_(True))

    def fresh_copy(self) -> "DiffusionModel":
        """Independent copy as it is (train/eval mode, requires_grad kept): what a cached loader hands out."""
        return self._copy_with_denoiser(copy.deepcopy(self.denoiser))

    def trust_weights_hash(self, known: str) -> "DiffusionModel":
        """Let `weights_hash()` return `known` while the denoiser's tensors stay untouched (the model cache
        knows the hash of what it loaded)."""
        self._hash_memo = (self._weights_key(), known)
        return self

    def to(self, device) -> "DiffusionModel":
        self.denoiser.to(device)
        return self

    @abstractmethod
    def save(self, path) -> None:
        ...

    _hash_memo: tuple | None = None  # (weights key, hash) from trust_weights_hash: SD's 3.4 GB hashed once per process

    def _weights_key(self) -> tuple:
        """Identity + storage + in-place version of every tensor (optimiser steps, copy_, reassignment)."""
        return tuple((id(t), t.data_ptr(), t._version) for t in self.denoiser.state_dict(keep_vars=True).values())

    def weights_hash(self) -> str:
        """Content hash of the denoiser weights (provenance, caches)."""
        key = self._weights_key()
        if self._hash_memo is not None and self._hash_memo[0] == key:
            return self._hash_memo[1]
        return state_dict_digest(self.denoiser.state_dict())
