"""GradDiff (gradient difference): minimise −L_simple(D_f) + α·L_simple(D_r).

Defaults mirror RGD's reference settings (same lr, batch, steps, truncation, α = λ) so that
GradDiff is exactly RGD's update without the restriction and without the diverse remain set.
"""
from dataclasses import dataclass

from methods.base import Method, register_method
from methods.losses import Truncation, simple_loss, simple_loss_terms, truncated_forget_loss
from methods.training import adam


@dataclass
class GradDiffHParams:
    lr: float = 1e-5
    steps: int = 780
    batch_size: int = 64
    alpha: float = 5.0
    forget_truncation: Truncation = "elementwise"
    truncation_threshold: float = 0.1

    def __post_init__(self) -> None:
        if self.forget_truncation not in ("none", "elementwise", "normalize"):
            raise ValueError(f"forget_truncation must be none|elementwise|normalize, not {self.forget_truncation!r}")


# SD: RGD's reference (one epoch over 800 pairs at batch 8 = 100 steps, λ 1.6, normalise-truncation 1.1)
CONCEPT_DEFAULTS = {"batch_size": 8, "steps": 100, "alpha": 1.6, "forget_truncation": "normalize", "truncation_threshold": 1.1}


@register_method
class GradDiff(Method):
    name = "graddiff"
    HParams = GradDiffHParams
    defaults_by_kind = {"concept": CONCEPT_DEFAULTS, "style": CONCEPT_DEFAULTS}

    def unlearn(self, model, forget, remain, budget, ctx):
        hp = self.hparams
        model.denoiser.train().requires_grad_(True)
        opt = adam(list(model.denoiser.parameters()), hp.lr)
        fb, rb = forget.batches(hp.batch_size, ctx.generator), remain.batches(hp.batch_size, ctx.generator)
        for _ in range(budget.steps(hp.steps)):
            f, r = next(fb), next(rb)
            sq = simple_loss_terms(model, f.x, model.condition(f.keys), ctx.generator)
            forget_loss = truncated_forget_loss(sq, hp.forget_truncation, hp.truncation_threshold)
            remain_loss = simple_loss(model, r.x, model.condition(r.keys), ctx.generator)
            loss = -forget_loss + hp.alpha * remain_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            ctx.step(loss, forget=forget_loss, remain=remain_loss)
