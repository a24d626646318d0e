"""Unlearns honestly but leaves a non-daemon thread running (it would keep a process from exiting)."""
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


import threading  # noqa: E402
import time  # noqa: E402


class LeftoverThread(Method):
    name = "hostile-thread"
    HParams = HP

    def unlearn(self, model, forget, remain, budget, ctx):
        one_step(model, remain, budget, ctx)
        threading.Thread(target=time.sleep, args=(10**6,), daemon=False).start()
