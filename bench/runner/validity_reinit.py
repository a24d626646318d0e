"""A deliberately destructive method for `unlearn-bench validate`: re-initialise the denoiser.

Not registered (it is loaded as a method file), so it never appears in `list methods` or a suite
by name.  It "forgets" everything by knowing nothing; a benchmark that cannot tell it from an
unlearning method does not measure what it claims."""
from dataclasses import dataclass

import torch

from bench import Method, simple_loss


@dataclass
class ReinitHParams:
    steps: int = 1  # one "step": the re-initialisation, counted like an optimiser step


class ReinitDenoiser(Method):
    name = "reinit-denoiser"
    HParams = ReinitHParams

    def unlearn(self, model, forget, remain, budget, ctx):
        batches = remain.batches(8, ctx.generator)
        for _ in range(budget.steps(self.hparams.steps)):
            torch.manual_seed(ctx.seed)  # the same fresh weights every time
            with torch.no_grad():
                for module in model.denoiser.modules():
                    if module is not model.denoiser and hasattr(module, "reset_parameters"):
                        module.reset_parameters()
            b = next(batches)
            with torch.no_grad():
                ctx.step(simple_loss(model, b.x, model.condition(b.keys), ctx.generator))
