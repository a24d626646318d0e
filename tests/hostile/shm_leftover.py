"""Unlearns honestly, loads a batch through a DataLoader with worker processes (tensors through /dev/shm),
then leaves a file of $HOSTILE_SHM_MB MiB (default 8) in /dev/shm named $HOSTILE_SHM_NAME, and one in
/dev/mqueue where that exists (a queue of the host's), to outlive its job."""
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


class ShmLeftover(Method):
    name = "hostile-shm-leftover"
    HParams = HP

    def unlearn(self, model, forget, remain, budget, ctx):
        one_step(model, remain, budget, ctx)
        data = torch.utils.data.TensorDataset(torch.arange(64, dtype=torch.float32).reshape(16, 4))
        loaded = sum(int(b[0].numel()) for b in torch.utils.data.DataLoader(data, batch_size=4, num_workers=2))
        name = os.environ.get("HOSTILE_SHM_NAME", "unlearn-bench-hostile-leftover")
        with open(os.path.join("/dev/shm", name), "wb") as fh:
            fh.write(b"\1" * (int(os.environ.get("HOSTILE_SHM_MB", "8")) << 20))
        queue = "n/a"
        if os.path.isdir("/dev/mqueue"):
            try:
                open(os.path.join("/dev/mqueue", name), "w").close()
                queue = "made"
            except OSError as exc:
                queue = type(exc).__name__
        return {"loaded": loaded, "mqueue": queue}
