"""Unlearns honestly, then allocates and touches memory in 64 MiB chunks up to $HOSTILE_HOG_GIB GiB
(default 3: bounded, so that without a cap the test machine survives and the test fails instead)."""
import os
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


class MemoryHog(Method):
    name = "hostile-memory-hog"
    HParams = HP

    def unlearn(self, model, forget, remain, budget, ctx):
        one_step(model, remain, budget, ctx)
        chunk, hoard = 64 << 20, []
        for _ in range(int(float(os.environ.get("HOSTILE_HOG_GIB", "3")) * (1 << 30)) // chunk):
            block = bytearray(chunk)
            block[::4096] = b"\1" * (chunk // 4096)  # touch every page
            hoard.append(block)
        return {"hogged_gib": len(hoard) * chunk / 2**30}
