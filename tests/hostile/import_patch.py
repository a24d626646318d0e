"""Unlearns nothing, and patches the judge and the score when its file is imported.

A driver that imports a submitted file to read its name and hyper-parameters runs this code; in the
--local run, that is the process that evaluates every job."""
from dataclasses import dataclass

import torch

from bench import Method


@dataclass
class HP:
    steps: int = 2


import os  # noqa: E402

import leaderboard.score  # noqa: E402
import metrics.classification  # noqa: E402
import metrics.zero_shot  # noqa: E402

for _mod in (metrics.classification, metrics.zero_shot):
    for _name in dir(_mod):
        _obj = getattr(_mod, _name)
        if isinstance(_obj, type) and hasattr(_obj, "compute"):
            _obj.compute = lambda self, inst, unlearned, original, ctx: {c: 1.0 for c in self.columns(inst)}
leaderboard.score.score = lambda *a, **k: 1.0
os.environ["HOSTILE_IMPORTED_IN"] = str(os.getpid())


class ImportPatch(Method):
    name = "hostile-import-patch"
    HParams = HP

    def unlearn(self, model, forget, remain, budget, ctx):
        opt = torch.optim.SGD(model.denoiser.parameters(), lr=0.0)
        loss = sum(p.sum() for p in model.denoiser.parameters()) * 0.0
        opt.zero_grad()
        loss.backward()
        opt.step()
        ctx.step(loss)
