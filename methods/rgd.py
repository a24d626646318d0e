"""RGD: restricted gradient + diversity (Ko et al., NeurIPS 2024), the suite's headline method.

Each step takes g_f = ∇(−L_f) on a forget batch (optionally truncated, as GradDiff) and
g_r = ∇L_r on the diversified remain set, and descends d = δ_f + λ·δ_r where, when the two
conflict (⟨g_f, g_r⟩ < 0), each is projected off the other (both from the original vectors);
to first order d then worsens neither loss. Inner products are global over all parameters.

Reference (reds-lab/Restricted_gradient_diversity_unlearning): class tasks follow
CIFAR/training/training_loop.py (`unlearn_alg == 'RGD'`: g_r averaged over the whole class-balanced
subset every step) and CIFAR/training/loss.py (element-wise truncation of the x₀-space error);
concept/style tasks follow SD/train-scripts/nsfw_RGD.py (`--surgery --truncate`: g_r on the remain
batch zipped with the forget batch, normalise-truncation). Deviations: docs/PROTOCOL.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bench.core.data import paired_batches
from methods.base import Method, check_choices, register_method
from methods.gradients import grads_of, restricted_update_lists
from methods.losses import RemainLoss, Truncation, TruncationSpace, forget_loss, remain_loss, remain_teacher
from methods.remain_sampling import RemainSampling, remain_subset
from methods.search_space import AroundResolved, LogUniform
from methods.training import adam

RemainGradient = Literal["subset", "batch"]


@dataclass
class RGDHParams:
    lr: float = 1e-5
    steps: int = 782  # 0.05 Mimg at batch 64: the EDM loop runs until 50,000 images are seen, ⌈50000/64⌉ = 782
    batch_size: int = 64  # forget batch (and remain batch when remain_gradient="batch")
    lam: float = 5.0  # λ, weight of the remain direction
    forget_truncation: Truncation = "elementwise"
    truncation_threshold: float = 0.1
    truncation_space: TruncationSpace = "x0"  # element-wise bound on (x̂₀−x₀)² (reference) or on (ε̂−ε)²
    remain_sampling: RemainSampling = "balanced"
    remain_gradient: RemainGradient = "subset"  # subset: whole remain subset every step (reference); batch: a minibatch of it
    remain_per_class: int | None = None  # None: the task's choice (remain.meta["per_class"], 50 in the reference)
    remain_chunk: int = 128  # examples per forward when averaging over the whole subset (memory, not maths)
    remain_loss: RemainLoss = "simple"  # simple: L_simple on D_r (reference); distill: match the frozen Original on D_r

    def __post_init__(self) -> None:
        check_choices(self)


# SD reference: Adam 1e-5, batch 8, one epoch over 800 pairs (100 steps), λ 1.6, normalise-truncation 1.1;
# the remain gradient is taken on the batch paired with the forget batch (800 SD images per step would not fit).
CONCEPT_DEFAULTS = {
    "batch_size": 8, "steps": 100, "lam": 1.6, "forget_truncation": "normalize",
    "truncation_threshold": 1.1, "remain_gradient": "batch",
}


def remain_gradient_loss(model, data, hp, generator, r, teacher=None) -> float:
    """Backward L_r over the whole subset (chunked, weighted to the mean) or the batch `r`; returns L_r.
    `teacher`: the frozen Original the distill remain term matches (methods/losses.remain_loss)."""
    if hp.remain_gradient == "batch":
        loss = remain_loss(model, r.x, model.condition(r.keys), generator, teacher)
        loss.backward()
        return float(loss.detach())
    total = 0.0
    n = len(data)
    for chunk in data.chunks(hp.remain_chunk):
        loss = remain_loss(model, chunk.x, model.condition(chunk.keys), generator, teacher) * (len(chunk) / n)
        loss.backward()
        total += float(loss.detach())
    return total


def restricted_unlearn(method: Method, model, forget, remain, budget, ctx) -> dict:
    """The RGD/RG loop; `method.hparams` decides the remain set and how its gradient is taken."""
    hp = method.hparams
    model.denoiser.train().requires_grad_(True)
    params = [p for p in model.denoiser.parameters() if p.requires_grad]
    opt = adam(params, hp.lr)
    remain_set = remain_subset(remain, hp.remain_sampling, ctx.generator, hp.remain_per_class)
    teacher = remain_teacher(model, hp.remain_loss)  # the frozen Original (distill), before any update
    # forget batch i with its concept-free twin i where the task pairs them (the SD reference's zip)
    stream = paired_batches(forget, remain_set, hp.batch_size, ctx.generator)
    conflicts, cosines = 0, []
    steps = budget.steps(hp.steps)
    for _ in range(steps):
        f, r = next(stream)
        # g_f = ∇(−L_f): ascent on the (truncated) forget loss
        opt.zero_grad(set_to_none=True)
        lf = forget_loss(model, f.x, model.condition(f.keys), ctx.generator,
                         hp.forget_truncation, hp.truncation_threshold, hp.truncation_space)
        (-lf).backward()
        g_f = grads_of(params)
        # g_r = ∇L_r over the whole remain subset (RGD) or the remain batch (RG, SD defaults)
        opt.zero_grad(set_to_none=True)
        lr_ = remain_gradient_loss(model, remain_set, hp, ctx.generator, r, teacher)
        g_r = grads_of(params)
        # d = δ_f + λ·δ_r (projections only on conflict), handed to Adam as the gradient
        d, stats = restricted_update_lists(g_f, g_r, hp.lam)
        for p, g in zip(params, d):
            p.grad = g
        opt.step()
        conflicts += stats.conflict
        cosines.append(stats.cosine)
        forget_value = float(lf.detach())
        ctx.step(-forget_value + hp.lam * lr_, forget=forget_value, remain=lr_)
    return {
        "remain_set_size": len(remain_set),
        "conflict_fraction": conflicts / max(steps, 1),
        "mean_cosine_gf_gr": sum(cosines) / max(len(cosines), 1),
    }


@register_method
class RGD(Method):
    """Restricted gradient on a class-balanced / combinatorially diverse remain set (Ko et al. 2024)."""

    name = "rgd"
    HParams = RGDHParams
    search_space = {"lr": AroundResolved(10.0), "lam": LogUniform(0.5, 10.0)}
    defaults_by_kind = {"concept": CONCEPT_DEFAULTS, "style": CONCEPT_DEFAULTS}

    def unlearn(self, model, forget, remain, budget, ctx):
        return restricted_unlearn(self, model, forget, remain, budget, ctx)
