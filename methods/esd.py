"""ESD (Gandikota et al., ICCV 2023): Erasing Concepts from Diffusion Models; `esd-u` and `esd-x`.

Each iteration (rohitgandikota/erasing, train-scripts/train-esd.py):
  1. draw t_enc uniformly from {0, …, S−1} (S = `ddim_steps` = 50);
  2. z: run the *trained* model's DDIM sampler (η = 0, guidance `sample_guidance` = 3, condition c)
     from fresh noise part of the way (no grad; `model.sample_latents(..., stop_after=k)`, in eval mode —
     our choice; train-esd.py samples in train mode, the same without dropout);
  3. t: uniform in the t_enc bin of the 1000-step schedule, [round(t_enc·T/S), round((t_enc+1)·T/S));
  4. e_0 = ε*(z, t, ∅), e_p = ε*(z, t, c) from the frozen copy θ* (one batched no-grad forward),
     e_n = ε_θ(z, t, c); loss = MSE(e_n, e_0 − η·(e_p − e_0)), η = `negative_guidance` = 1.
Paper defaults: Adam lr 1e-5, 1000 iterations, batch 1, fp32. c (`prompt`): "concept" (default)
= the one concept prompt the task names (`forget.meta["concept_prompt"]`: "nudity", the artist's
name, "a cross", "swirl style"), as train-esd.py erases `--prompt 'nudity'`; "forget" = a full forget
prompt per iteration (drawn from forget.keys with ctx.generator, `batch_size` of them), which makes
e_0 − η(e_p − e_0) push away from the whole scene the paired remain prompts share. On
class-conditional models c is the target class label either way, with ∅ = the null class.

How far the sampler runs (`timestep_binning`; see `esd_schedule`). The reference's CompVis DDIM
sampler is called with till_T = t_enc and breaks when `index + 1 == till_T`, where index counts
DOWN from the noisy end, over ddim_timesteps[:-1] = [1, 21, …, 961] (t_start = −1 drops 981). It
therefore runs S − t_enc steps (all 49 for t_enc = 0) and leaves z at the noise level of DDPM
step ≈ 20·(t_enc − 2) + 1 — t_enc counts from the CLEAN end ("0 being good" in the code), and z sits
about two DDIM steps below the bin its t is drawn from:
  "reference" (default): z at that same level: k = min(S, S + 1 − t_enc) steps of our DDIM (whose
      first step is at 980/981, one above CompVis' 961, so one more step reaches the same level);
      t from the t_enc bin. The residual mismatch (z ≈ 2 DDIM steps less noisy than t says) and the
      extra top step are the only differences from the CompVis loop.
  "matched": k = t_enc steps, so z sits exactly at DDIM timestep τ_k (≈ 1000 − (k+1)·T/S), and t
      is drawn from the bin that contains τ_k, [round((S−1−k)·T/S), round((S−k)·T/S)) — the
      newer esd_sd.py of the same repository uses t = τ_k itself.
Both draw the bin index uniformly, so the marginal of t is the same; they differ in the z fed
with it. The class-DDPM port in OPTML-Group/Unlearn-Saliency (train_esd) is not followed (it
samples with η = 1 and steps the optimiser before backward).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F

from bench.core.errors import ConfigError
from methods.base import Method, check_choices, register_method
from methods.losses import esd_target
from methods.parameter_subsets import esd_subset
from methods.search_space import AroundResolved, Uniform
from methods.training import adam, eval_mode, select_trainable

Binning = Literal["reference", "matched"]
Prompt = Literal["concept", "forget"]
CONCEPT_PROMPT = "concept_prompt"  # the forget set's meta key where a text task names its concept (tasks/)


@dataclass
class ESDHParams:
    """ESD paper/train-esd.py defaults (same on every task kind).

    ddim_steps: S, DDIM steps of the partial sampler and number of timestep bins.
    sample_guidance: CFG scale of the sampler producing z (train-esd.py start_guidance = 3).
    negative_guidance: η in the target e_0 − η(e_p − e_0).
    timestep_binning: "reference" | "matched" — which partial trajectory z goes with t's bin
      (module docstring, `esd_schedule`).
    batch_size: prompts (class labels) per iteration; the reference uses 1. With more, one t_enc
      (so one z noise level) is shared per iteration and t is drawn per example inside its bin.
    prompt: "concept" (the task's concept prompt, the reference) | "forget" (full forget prompts).
    """

    lr: float = 1e-5
    steps: int = 1000
    batch_size: int = 1
    ddim_steps: int = 50
    sample_guidance: float = 3.0
    negative_guidance: float = 1.0
    timestep_binning: Binning = "reference"
    prompt: Prompt = "concept"

    def __post_init__(self) -> None:
        check_choices(self)
        if self.ddim_steps < 1 or self.batch_size < 1:
            raise ValueError("ddim_steps and batch_size must be positive")


def esd_schedule(t_enc: int, ddim_steps: int, num_train_timesteps: int, binning: Binning = "reference") -> tuple[int, int, int]:
    """(sampler steps k to run from noise, t_low, t_high): t is drawn uniformly in [t_low, t_high).

    reference: k = min(S, S + 1 − t_enc), bin [round(t_enc·T/S), round((t_enc+1)·T/S)) (train-esd.py);
    matched:   k = t_enc, bin [round((S−1−t_enc)·T/S), round((S−t_enc)·T/S)), which holds the DDIM
               timestep z sits at after k steps.
    """
    S, T = ddim_steps, num_train_timesteps
    if not 0 <= t_enc < S:
        raise ValueError(f"t_enc must lie in 0..{S - 1}, not {t_enc}")
    if binning == "reference":
        return min(S, S + 1 - t_enc), round(t_enc / S * T), round((t_enc + 1) / S * T)
    if binning == "matched":
        return t_enc, round((S - 1 - t_enc) / S * T), round((S - t_enc) / S * T)
    raise ValueError(f"timestep_binning must be reference|matched, not {binning!r}")


def esd_prompts(forget, prompt: Prompt, kind: str, name: str = "esd") -> list:
    """The conditions ESD draws from: the task's concept prompt alone ("concept", text models), or the
    forget keys (class labels, or full forget prompts with "forget")."""
    if kind == "class" or prompt == "forget":
        return list(forget.keys)
    concept = forget.meta.get(CONCEPT_PROMPT)
    if not concept:
        raise ConfigError(f"{name}: prompt=concept needs the task's concept prompt (forget.meta[{CONCEPT_PROMPT!r}]); "
                          "this task names none, so set prompt: forget")
    return [concept]


class _ESD(Method):
    """Shared ESD loop; subclasses choose the parameter subset (`variant`)."""

    variant: ClassVar[str]
    HParams = ESDHParams
    search_space = {"lr": AroundResolved(10.0), "negative_guidance": Uniform(0.5, 3.0)}

    def unlearn(self, model, forget, remain, budget, ctx):
        hp = self.hparams
        names = [n for n, _ in model.denoiser.named_parameters()]
        try:
            subset, selected = esd_subset(names, self.variant, class_conditional=model.kind == "class")
        except ValueError as exc:
            raise ConfigError(f"{self.name}: {exc}") from exc
        if not selected:
            raise ConfigError(f"{self.name}: the model has no parameters in subset {subset!r}")
        frozen = model.frozen_copy()  # θ*, before any update
        model.denoiser.train()
        params = select_trainable(model, selected)
        opt = adam(params, hp.lr)
        g, S, T, B = ctx.generator, hp.ddim_steps, model.num_train_timesteps, hp.batch_size
        keys = esd_prompts(forget, hp.prompt, model.kind, self.name)
        sampler_steps = 0
        t0 = time.perf_counter()
        n_steps = budget.steps(hp.steps)
        for _ in range(n_steps):
            t_enc = int(torch.randint(S, (1,), generator=g))
            k, lo, hi = esd_schedule(t_enc, S, T, hp.timestep_binning)
            idx = torch.randint(len(keys), (B,), generator=g).tolist()
            cond = model.condition([keys[i] for i in idx])
            noise = torch.randn((B, *model.sample_shape), generator=g).to(model.device)
            with eval_mode(model.denoiser):  # our choice: no dropout while sampling z (the reference stays in train mode)
                z = model.sample_latents(cond, noise, S, hp.sample_guidance, stop_after=k)
            sampler_steps += min(k, S)
            t = torch.randint(lo, hi, (B,), generator=g).to(model.device)
            with torch.no_grad():  # e_0 and e_p in one batched forward of θ*
                e = frozen.predict_noise(torch.cat([z, z]), torch.cat([t, t]), torch.cat([model.null_condition(B), cond]))
                e_0, e_p = e.chunk(2)
            e_n = model.predict_noise(z, t, cond)
            loss = F.mse_loss(e_n, esd_target(e_0, e_p, hp.negative_guidance))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            ctx.step(loss)
        return {
            "parameter_subset": subset,
            "trainable_parameters": sum(p.numel() for p in params),
            "trainable_tensors": len(params),
            "timestep_binning": hp.timestep_binning,
            "prompts": keys[0] if len(set(keys)) == 1 else f"{len(set(keys))} forget prompts",
            "sampler_steps": sampler_steps,
            "partial_samples": n_steps * B,
            "seconds_per_step": round((time.perf_counter() - t0) / max(n_steps, 1), 5),
        }


@register_method
class ESDU(_ESD):
    """ESD-u: everything but cross-attention, time embedding and output layers (global concepts, e.g. nudity)."""

    name = "esd-u"
    variant = "esd-u"


@register_method
class ESDX(_ESD):
    """ESD-x: cross-attention (`attn2`) only (artist styles); text-to-image models only, since a
    class-conditional UNet has no cross-attention (ESD-u's class fallback would be the same row)."""

    name = "esd-x"
    variant = "esd-x"
    task_kinds = ("concept", "style")
