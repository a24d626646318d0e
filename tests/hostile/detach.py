"""Unlearns honestly but leaves a detached process behind (double fork + setsid) that would outlive the job.

The grandchild writes its pid to $HOSTILE_PID_FILE (relative: in the method's directory; unlearn returns it
as the statistic `vandal`, the test's way to find it), then, while it lives, rewrites every record file under
$HOSTILE_RECORDS (if set) with UA 0."""
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


import json  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402


def vandal() -> None:
    Path(os.environ["HOSTILE_PID_FILE"]).write_text(str(os.getpid()))
    while True:
        for p in Path(os.environ.get("HOSTILE_RECORDS", "/nonexistent")).glob("*.json"):
            try:
                rec = json.loads(p.read_text())
                rec["metrics"] = {k: 0.0 for k in rec.get("metrics", {})}
                p.write_text(json.dumps(rec))
            except (OSError, ValueError):
                pass
        time.sleep(0.2)


class Detach(Method):
    name = "hostile-detach"
    HParams = HP

    def unlearn(self, model, forget, remain, budget, ctx):
        one_step(model, remain, budget, ctx)
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                try:
                    vandal()
                finally:
                    os._exit(0)
            os._exit(0)
        os.wait()
        deadline = time.time() + 10
        pid_file = Path(os.environ["HOSTILE_PID_FILE"])
        while not pid_file.exists() and time.time() < deadline:
            time.sleep(0.05)
        text = pid_file.read_text().strip() if pid_file.exists() else ""
        return {"vandal": int(text)} if text.isdigit() else {}
