"""Unlearns honestly, then reads what it should not: each path in $HOSTILE_PRIVATE_PATHS (os.pathsep-separated:
the voucher key, Ray's token and session directory, results directories) and $HOSTILE_PUBLIC (data it may
read). It lists a directory, reads a file; what it got comes back as the method's statistics."""
import json
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


def read(path: str) -> str:
    try:
        if os.path.isdir(path):
            return f"listed {len(os.listdir(path))} entries"
        with open(path, "rb") as fh:
            return f"read {len(fh.read())} bytes"
    except OSError as exc:
        return type(exc).__name__


class ReadSecrets(Method):
    name = "hostile-read-secrets"
    HParams = HP

    def unlearn(self, model, forget, remain, budget, ctx):
        one_step(model, remain, budget, ctx)
        paths = [p for p in os.environ.get("HOSTILE_PRIVATE_PATHS", "").split(os.pathsep) if p]
        got = {p: read(p) for p in paths + [os.environ.get("HOSTILE_PUBLIC", "/etc/hostname")]}
        return {"outcome": json.dumps(got, sort_keys=True)}
