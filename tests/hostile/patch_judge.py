"""Unlearns nothing (one zero-gradient step) and patches the judge and the score inside unlearn.

In a harness that evaluates in the method's own process this ranked first (UA 1.000)."""
from dataclasses import dataclass

import torch

from bench import Method, simple_loss


@dataclass
class HP:
    steps: int = 2


def one_step(model, remain, budget, ctx):
    """One honest step (so a plug-in that then misbehaves got as far as a real method)."""
    opt = torch.optim.SGD(model.denoiser.parameters(), lr=1e-4)
    b = next(remain.batches(4, ctx.generator))
    loss = simple_loss(model, b.x, model.condition(b.keys), ctx.generator)
    opt.zero_grad()
    loss.backward()
    opt.step()
    ctx.step(loss)



class PatchJudge(Method):
    name = "hostile-patch-judge"
    HParams = HP

    def unlearn(self, model, forget, remain, budget, ctx):
        import leaderboard.score
        import metrics.classification
        import metrics.zero_shot

        for mod in (metrics.classification, metrics.zero_shot):
            for name in dir(mod):
                obj = getattr(mod, name)
                if isinstance(obj, type) and hasattr(obj, "compute"):
                    obj.compute = lambda self, inst, unlearned, original, ctx: {c: 1.0 for c in self.columns(inst)}
        leaderboard.score.job_score = lambda *a, **k: 1.0
        opt = torch.optim.SGD(model.denoiser.parameters(), lr=0.0)
        loss = sum(p.sum() for p in model.denoiser.parameters()) * 0.0
        opt.zero_grad()
        loss.backward()
        opt.step()
        ctx.step(loss)
        for p in model.text_encoder.parameters() if hasattr(model, "text_encoder") else ():
            p.data.zero_()  # edits the frozen parts it shares with the Original it was handed
