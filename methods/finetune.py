"""Finetune: minimise L_simple on the remain set only (what plain fine-tuning forgets)."""
from dataclasses import dataclass

from bench.core.denoising import simple_loss
from methods.base import Method, register_method
from methods.training import adam


@dataclass
class FinetuneHParams:
    lr: float = 1e-5
    steps: int = 782  # 0.05 Mimg at batch 64: the EDM loop runs until 50,000 images are seen, ⌈50000/64⌉ = 782
    batch_size: int = 64


@register_method
class Finetune(Method):
    name = "finetune"
    HParams = FinetuneHParams
    # SD: the RGD reference budget, one epoch over 800 pairs at batch 8
    defaults_by_kind = {"concept": {"batch_size": 8, "steps": 100}, "style": {"batch_size": 8, "steps": 100}}

    def unlearn(self, model, forget, remain, budget, ctx):
        hp = self.hparams
        model.denoiser.train().requires_grad_(True)
        opt = adam(list(model.denoiser.parameters()), hp.lr)
        batches = remain.batches(hp.batch_size, ctx.generator)
        for _ in range(budget.steps(hp.steps)):
            b = next(batches)
            loss = simple_loss(model, b.x, model.condition(b.keys), ctx.generator)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            ctx.step(loss)
