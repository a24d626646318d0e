"""SalUn (Fan et al., ICLR 2024): saliency-masked random-label unlearning.

1. Saliency mask. One pass over D_f (`forget.chunks`) summing ∇θ of the forget loss computed on
   the classifier-free-guided prediction; rank |Σ g| over ALL parameters globally and keep the top
   `sparsity` fraction (methods/saliency.py: kthvalue threshold, boolean masks, tie rule there).
   Guided prediction, as both references write it: ε̂ = (1 + w)·ε(x_t, c) − w·ε(x_t, ∅) with
   w = `mask_guidance`, i.e. standard CFG at scale 1 + w (`model.guided_noise(…, 1 + w)`).
     class models: loss = +Σ_pixels (ε̂ − ε)², batch mean (DDPM/runners/diffusion.py generate_mask,
                   cond_scale=2.0), each batch's gradient clipped to norm `clip_grad_norm` (1.0) before
                   it is added: Σ_b clip(g_b), signed, |·| at the end, no optimiser step — the current
                   official code (an older version summed |g_b| and stepped Adam between batches);
     text models:  loss = −MSE(ε̂, ε)   (SD/train-scripts/generate_mask.py, c_guidance=7.5), no clipping.
   Without clipping the sign and the sum/mean reduction do not change the |Σ g| ranks; with it the
   scale decides how often the clip engages, so the class loss keeps the reference's pixel sum.
     * the mask pass runs in eval mode (no dropout), as the references' generate_mask does; the
       official rank code negates |Σ g| before its ascending argsort, so it keeps the MOST salient
       weights, as the paper and our default "top" do (`mask_select="bottom"`, the least salient,
       is an ablation only).
2. Training. forget term = MSE(ε_θ(x_t, t, c_f), stopgrad ε_θ(x_t, t, c′)) at the same x_t, t;
   c′ = (c + 1) mod K (`relabel="next"`, the current DDPM reference) or a uniformly drawn other
   class (`relabel="random"`, ctx.generator) for class tasks, and the paired safe prompt
   (`forget.paired_keys`) for concept/style tasks. Total = forget + α·L_simple(D_r), element-mean
   reductions throughout.
3. Step: backward → optional clip_grad_norm over all weights (the DDPM reference clips at 1.0
   before masking; the SD scripts do not clip) → grad ⊙ mask in place → Adam, weight_decay 0: a
   masked weight gets an exactly-zero gradient forever, so Adam's moments stay 0 and the weight
   stays bit-identical.

Reference scales. Class (DDPM/configs/cifar10_saliency_unlearn.yml + README): Adam lr 1e-4,
1000 iterations, batch 128 forget + 128 remain, grad_clip 1.0, α = 1e-3 on a remain loss that sums
over pixels (3·32·32 = 3072 per image) while the forget MSE is an element mean; in element-mean
units that is α = 1e-3·3072 ≈ 3.07, our class default. SD (nsfw_removal.py / certain_label.py):
Adam lr 1e-5, batch 8, no clipping, remain loss = LDM shared_step (element mean); concept defaults
follow nsfw_removal.py (α 0.1, one epoch over the paper's 800-image D_f = 100 steps), style
defaults follow the README's certain_label.py command (α 0.5, 5 epochs = 500 steps); these are the
reference's epoch counts turned into steps at the paper's data size.

Data (`data`). "diverse" (default): D_f's own prompts, their paired safe prompts as c′, D_r's prompts, fresh shuffled
batches. "reference": what the SD reference feeds SalUn on nudity (Unlearn-Saliency SD/train-scripts/generate_mask.py
generate_nsfw_mask, nsfw_removal.py, as RGD's copy runs it): every forget image under the one prompt "a photo of a nude
person", c′ and every remain prompt "a photo of a person wearing clothes"; the mask pass still goes over all of D_f, but
each training step takes `next(iter(loader))` of the unshuffled loaders, i.e. the first batch of D_f and of D_r every
step. The images stay the task's (the reference's are 800 images generated from each fixed prompt).
"""
from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, replace
from typing import Iterator, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.core.data import UnlearnData
from bench.core.errors import ConfigError
from methods.base import Method, check_choices, register_method
from methods.losses import RemainLoss, antithetic_timesteps, drop_condition, remain_target, remain_teacher
from methods.saliency import MaskSelect, saliency_masks
from methods.search_space import AroundResolved, LogUniform
from methods.training import adam, eval_mode

Relabel = Literal["next", "random"]
SalUnData = Literal["diverse", "reference"]

# the SD reference's fixed (forget prompt, safe prompt) per concept (forget.meta["concept_prompt"]): nsfw_removal.py's
# word_nude / word_wear; it has no other concept's pair
REFERENCE_PROMPTS = {"nudity": ("a photo of a nude person", "a photo of a person wearing clothes")}

# 1e-3 on a pixel-SUM loss over 3×32×32 CIFAR images, expressed for an element-MEAN remain loss
REFERENCE_CLASS_ALPHA = 1e-3 * 3 * 32 * 32


@dataclass
class SalUnHParams:
    """Defaults: the class-conditional DDPM reference; concept/style overrides in SalUn.defaults_by_kind.

    sparsity: fraction of all weights KEPT trainable (top |Σ g|); the paper's "50% sparsity".
    mask_guidance: w in (1 + w)·ε_c − w·ε_∅ for the mask loss (class ref. 2.0, SD ref. 7.5).
    mask_select: "top" (paper and official code: the most salient) | "bottom" (least salient; ablation).
    relabel: class tasks only; "next" = (c + 1) mod K (current reference), "random" = uniform other class.
    alpha: weight of the element-mean remain loss.
    clip_grad_norm: max global grad norm before masking; None = off (SD ref.), 1.0 (DDPM ref.).
    cond_drop_prob: condition dropout in every training-mode forward (forget output, relabelled
      target, remain), independently per forward. The DDPM reference's model forward in "train"
      mode drops the class with the config's cond_drop_prob = 0.1 in all three; the SD code (LDM
      apply_model / shared_step) never drops it → 0.
    antithetic_timesteps: timesteps in pairs (t, T−1−t) as the DDPM reference (mask pass, forget
      and remain batches); the SD code draws them independently.
    """

    lr: float = 1e-4
    steps: int = 1000
    batch_size: int = 128  # per set: forget batch and remain batch
    alpha: float = REFERENCE_CLASS_ALPHA
    sparsity: float = 0.5
    mask_guidance: float = 2.0
    mask_select: MaskSelect = "top"
    relabel: Relabel = "next"
    clip_grad_norm: float | None = 1.0
    cond_drop_prob: float = 0.1
    antithetic_timesteps: bool = True
    remain_loss: RemainLoss = "simple"  # simple: L_simple on D_r (reference); distill: match the frozen Original on D_r
    data: SalUnData = "diverse"  # diverse: the task's prompts, fresh batches; reference: the SD reference's two prompts, first batch

    def __post_init__(self) -> None:
        check_choices(self)
        if not 0.0 <= self.sparsity <= 1.0:
            raise ValueError(f"sparsity is the kept fraction and must lie in [0, 1], not {self.sparsity}")
        if not 0.0 <= self.cond_drop_prob < 1.0:
            raise ValueError(f"cond_drop_prob must lie in [0, 1), not {self.cond_drop_prob}")
        if self.clip_grad_norm is not None and self.clip_grad_norm <= 0:
            raise ValueError("clip_grad_norm must be positive or None")


SD_COMMON = {"lr": 1e-5, "batch_size": 8, "mask_guidance": 7.5, "clip_grad_norm": None,
             "cond_drop_prob": 0.0, "antithetic_timesteps": False}


def relabel_classes(labels: Tensor, num_classes: int, mode: Relabel, generator: torch.Generator) -> Tensor:
    """c′ for class labels: (c + 1) mod K, or uniformly one of the K − 1 other classes."""
    if num_classes < 2:
        raise ValueError("relabelling needs at least two classes")
    if mode == "next":
        return (labels + 1) % num_classes
    if mode == "random":
        shift = torch.randint(1, num_classes, labels.shape, generator=generator).to(labels.device)
        return (labels + shift) % num_classes
    raise ValueError(f"relabel must be next|random, not {mode!r}")


def reference_data(forget: UnlearnData, remain: UnlearnData) -> tuple[UnlearnData, UnlearnData]:
    """D_f and D_r as the SD reference conditions them: every forget image under its concept's one forget prompt with the
    one safe prompt as c′, every remain image under the safe prompt (REFERENCE_PROMPTS); the images are unchanged."""
    concept = forget.meta.get("concept_prompt")
    if concept not in REFERENCE_PROMPTS:
        raise ConfigError(f"salun: data=reference has the SD reference's fixed prompts for {', '.join(REFERENCE_PROMPTS)} "
                          f"only, not for the concept {concept!r}")
    unsafe, safe = REFERENCE_PROMPTS[concept]
    return (replace(forget, keys=[unsafe] * len(forget), paired_keys=[safe] * len(forget)),
            replace(remain, keys=[safe] * len(remain)))


def first_batch_forever(data: UnlearnData, batch_size: int) -> Iterator[UnlearnData]:
    """The reference's `next(iter(loader))` at every step of an unshuffled loader: its first batch, again and again."""
    return itertools.repeat(next(data.chunks(batch_size)))


def guided_prediction(model, x_t: Tensor, t: Tensor, cond: Tensor, w: float) -> Tensor:
    """(1 + w)·ε(x_t, c) − w·ε(x_t, ∅): the references' guidance form, = standard CFG at scale 1 + w."""
    return model.guided_noise(x_t, t, cond, 1.0 + w)


@register_method
class SalUn(Method):
    name = "salun"
    HParams = SalUnHParams
    search_space = {"lr": AroundResolved(10.0), "alpha": LogUniform(0.03, 10.0)}
    defaults_by_kind = {
        "concept": {**SD_COMMON, "alpha": 0.1, "steps": 100},
        "style": {**SD_COMMON, "alpha": 0.5, "steps": 500},
    }

    def __init__(self, hparams=None):
        super().__init__(hparams)
        self.masks: dict[str, Tensor] | None = None  # the last run's masks (name -> bool), for inspection

    # -- pieces --------------------------------------------------------------------------
    def _timesteps(self, model, n: int, generator: torch.Generator) -> Tensor:
        if self.hparams.antithetic_timesteps:
            return antithetic_timesteps(n, model.num_train_timesteps, generator, model.device)
        return model.random_timesteps(n, generator)

    def _noised(self, model, x0: Tensor, generator: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
        noise = torch.randn(x0.shape, generator=generator).to(x0.device, x0.dtype)
        t = self._timesteps(model, x0.shape[0], generator)
        return model.add_noise(x0, noise, t), t, noise

    def _relabelled(self, model, batch, ctx) -> Tensor:
        if model.kind == "class":
            k = getattr(model, "num_classes", None) or ctx.num_classes
            if not k:
                raise ConfigError("salun: class task without a number of classes")
            labels = model.condition(batch.keys)
            return relabel_classes(labels, int(k), self.hparams.relabel, ctx.generator)
        if batch.paired_keys is None:
            raise ConfigError("salun: a concept/style forget set needs paired_keys (the safe prompt c′)")
        return model.condition(batch.paired_keys)

    def mask_loss(self, model, pred: Tensor, noise: Tensor) -> Tensor:
        """The mask pass's loss, as each reference writes it: class models +Σ_pixels (ε̂ − ε)², batch mean
        (DDPM generate_mask: the scale matters there, since each batch's gradient is clipped); text models
        −MSE (SD generate_mask, no clipping: scale and sign leave the |Σ g| ranks alone)."""
        if model.kind == "class":
            return (pred - noise).pow(2).flatten(1).sum(1).mean()
        return -F.mse_loss(pred, noise)

    def compute_masks(self, model, forget, ctx) -> tuple[dict[str, Tensor], dict]:
        """One pass over D_f (eval mode: no dropout): Σ_batches g_b, each batch's gradient clipped to
        `clip_grad_norm` first when set (the current DDPM reference: clip, accumulate the SIGNED gradient,
        |·| at the end; no optimiser step), then the global top-`sparsity` masks of |Σ g|."""
        hp = self.hparams
        den = model.denoiser
        t0 = time.perf_counter()
        den.zero_grad(set_to_none=True)
        params = list(den.parameters())
        sums = None  # per-batch clipping needs each batch's gradient apart: Σ kept here; else .grad accumulates
        batches = 0
        with eval_mode(den):
            for chunk in forget.chunks(hp.batch_size):
                x_t, t, noise = self._noised(model, chunk.x, ctx.generator)
                pred = guided_prediction(model, x_t, t, model.condition(chunk.keys), hp.mask_guidance)
                self.mask_loss(model, pred, noise).backward()
                if hp.clip_grad_norm is not None:
                    torch.nn.utils.clip_grad_norm_(params, hp.clip_grad_norm)  # this batch's gradient alone
                    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
                    sums = grads if sums is None else [a.add_(g) for a, g in zip(sums, grads)]
                    den.zero_grad(set_to_none=True)
                batches += 1
        names = [n for n, _ in den.named_parameters()]
        summed = sums if sums is not None else [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        scores = {n: g.abs_() for n, g in zip(names, summed)}
        del summed, sums
        masks, st = saliency_masks(scores, hp.sparsity, hp.mask_select)
        del scores
        den.zero_grad(set_to_none=True)
        stats = {
            "mask_kept_fraction": st.kept_fraction,
            "mask_kept": st.kept,
            "mask_total": st.total,
            "mask_threshold": st.threshold,
            "mask_batches": batches,
            "mask_seconds": round(time.perf_counter() - t0, 4),
            "mask_fully_frozen_tensors": sum(1 for n in names if not bool(masks[n].any())),
        }
        return masks, stats

    # -- the method ----------------------------------------------------------------------
    def unlearn(self, model, forget, remain, budget, ctx):
        hp = self.hparams
        den = model.denoiser
        reference = hp.data == "reference"
        if reference:
            if model.kind == "class":
                raise ConfigError("salun: data=reference is the SD reference's text-prompt data; class tasks have none")
            forget, remain = reference_data(forget, remain)
        den.train().requires_grad_(True)
        masks, stats = self.compute_masks(model, forget, ctx)
        self.masks = masks
        named = list(den.named_parameters())
        all_params = [p for _, p in named]
        # partially masked tensors: the entries to zero; fully kept: nothing to do; fully masked:
        # gradient still computed (it enters the clip norm, as in the reference) but never stepped
        frozen = [(p, ~masks[n]) for n, p in named if bool(masks[n].any()) and not bool(masks[n].all())]
        trainable = [p for n, p in named if bool(masks[n].any())]
        if not trainable:
            raise ConfigError("salun: the saliency mask keeps no weight (sparsity too small)")
        opt = adam(trainable, hp.lr, weight_decay=0.0)
        teacher = remain_teacher(model, hp.remain_loss)  # the frozen Original (distill), before any update
        if reference:
            fb, rb = first_batch_forever(forget, hp.batch_size), first_batch_forever(remain, hp.batch_size)
        else:
            fb, rb = forget.batches(hp.batch_size, ctx.generator), remain.batches(hp.batch_size, ctx.generator)
        g = ctx.generator
        t_start = time.perf_counter()
        n_steps = budget.steps(hp.steps)
        for _ in range(n_steps):
            f, r = next(fb), next(rb)
            # forget term: output with grad, relabelled target without (same x_t, t, noise)
            xf, tf, _ = self._noised(model, f.x, g)
            cf = model.condition(f.keys)
            c_pseudo = self._relabelled(model, f, ctx)
            null_f = model.null_condition(len(f))
            with torch.no_grad():
                target = model.predict_noise(xf, tf, drop_condition(c_pseudo, null_f, hp.cond_drop_prob, g))
            # remain term
            xr, tr, noise_r = self._noised(model, r.x, g)
            cr = drop_condition(model.condition(r.keys), model.null_condition(len(r)), hp.cond_drop_prob, g)
            cf = drop_condition(cf, null_f, hp.cond_drop_prob, g)
            # one forward for both grad-carrying predictions (per-example ops only: same values)
            nf = xf.shape[0]
            pred = model.predict_noise(torch.cat([xf, xr]), torch.cat([tf, tr]), torch.cat([cf, cr]))
            forget_loss = F.mse_loss(pred[:nf], target)
            remain_loss = F.mse_loss(pred[nf:], remain_target(teacher, xr, tr, cr, noise_r))
            loss = forget_loss + hp.alpha * remain_loss
            den.zero_grad(set_to_none=True)
            loss.backward()
            if hp.clip_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(all_params, hp.clip_grad_norm)
            for p, fz in frozen:
                if p.grad is not None:
                    p.grad.masked_fill_(fz, 0.0)
            opt.step()
            ctx.step(loss, forget=forget_loss, remain=remain_loss)
        den.zero_grad(set_to_none=True)
        stats["train_seconds_per_step"] = round((time.perf_counter() - t_start) / max(n_steps, 1), 5)
        stats["relabel"] = hp.relabel if model.kind == "class" else "paired_keys"
        stats["data"] = hp.data
        return stats
