"""GradDiff (gradient difference): minimise −L_f + α·L_simple(D_r).

What the RGD reference runs as its GradDiff baseline: class tasks as CIFAR/training/training_loop.py
(`unlearn_alg == 'GradDiff'`: the truncated forget loss, remain minibatches cycled from the same
class-balanced subset RGD uses — 50 per remaining class — and d = g_f + α·g_r with no projection);
concept/style tasks as SD/train-scripts/nsfw_RGD.py without `--surgery` (the remain batch is the
forget batch's paired twin). Defaults mirror RGD's reference settings (same lr, batch, steps,
truncation, α = λ), so GradDiff is exactly RGD's update without the restriction and with a minibatch
remain gradient.
"""
from dataclasses import dataclass

from bench.core.data import paired_batches
from methods.base import Method, check_choices, register_method
from methods.losses import RemainLoss, Truncation, TruncationSpace, forget_loss, remain_loss, remain_teacher
from methods.remain_sampling import RemainSampling, remain_subset
from methods.search_space import AroundResolved, LogUniform
from methods.training import adam


@dataclass
class GradDiffHParams:
    lr: float = 1e-5
    steps: int = 782  # 0.05 Mimg at batch 64: the EDM loop runs until 50,000 images are seen, ⌈50000/64⌉ = 782
    batch_size: int = 64
    alpha: float = 5.0
    forget_truncation: Truncation = "elementwise"
    truncation_threshold: float = 0.1
    truncation_space: TruncationSpace = "x0"  # element-wise bound on (x̂₀−x₀)² (reference) or on (ε̂−ε)²
    remain_sampling: RemainSampling = "balanced"  # the remain subset minibatches come from (as RGD's)
    remain_per_class: int | None = None  # None: the task's choice (remain.meta["per_class"], 50 in the reference)
    remain_loss: RemainLoss = "simple"  # simple: L_simple on D_r (reference); distill: match the frozen Original on D_r

    def __post_init__(self) -> None:
        check_choices(self)


# SD: RGD's reference (one epoch over 800 pairs at batch 8 = 100 steps, λ 1.6, normalise-truncation 1.1)
CONCEPT_DEFAULTS = {"batch_size": 8, "steps": 100, "alpha": 1.6, "forget_truncation": "normalize", "truncation_threshold": 1.1}


@register_method
class GradDiff(Method):
    name = "graddiff"
    HParams = GradDiffHParams
    search_space = {"lr": AroundResolved(10.0), "alpha": LogUniform(0.5, 10.0)}
    defaults_by_kind = {"concept": CONCEPT_DEFAULTS, "style": CONCEPT_DEFAULTS}

    def unlearn(self, model, forget, remain, budget, ctx):
        hp = self.hparams
        model.denoiser.train().requires_grad_(True)
        opt = adam(list(model.denoiser.parameters()), hp.lr)
        remain_set = remain_subset(remain, hp.remain_sampling, ctx.generator, hp.remain_per_class)
        teacher = remain_teacher(model, hp.remain_loss)  # the frozen Original (distill), before any update
        # forget batch i with its concept-free twin i where the task pairs them (the SD reference's zip)
        stream = paired_batches(forget, remain_set, hp.batch_size, ctx.generator)
        for _ in range(budget.steps(hp.steps)):
            f, r = next(stream)
            # −L_f (truncated) + α·L_r, one backward
            lf = forget_loss(model, f.x, model.condition(f.keys), ctx.generator,
                             hp.forget_truncation, hp.truncation_threshold, hp.truncation_space)
            lr_ = remain_loss(model, r.x, model.condition(r.keys), ctx.generator, teacher)
            loss = -lf + hp.alpha * lr_
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            ctx.step(loss, forget=lf, remain=lr_)
        return {"remain_set_size": len(remain_set)}
