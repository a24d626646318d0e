"""Step accounting the harness can see: the step budget is enforced, not voluntary.

A method reports its steps through `ctx.step`; the harness also counts every `step()` of any
torch optimiser during `unlearn` (a global post-hook) and compares the weights before and
after. A method fails when it took more optimiser steps than the suite's cap, or reported none
while its weights changed (a closed-form edit reports its one step, as UCE does).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from bench.core.errors import BenchError


class StepBudgetError(BenchError):
    """A method took more steps than the budget allows, or hid its steps."""


@dataclass
class StepCount:
    optimizer_steps: int = 0


@contextmanager
def count_optimizer_steps() -> Iterator[StepCount]:
    count = StepCount()

    def hook(optimizer, args, kwargs):
        count.optimizer_steps += 1

    handle = register_optimizer_step_post_hook(hook)
    try:
        yield count
    finally:
        handle.remove()


def weights_changed(model: torch.nn.Module, original: torch.nn.Module) -> bool:
    a, b = model.state_dict(), original.state_dict()
    if a.keys() != b.keys():
        return True
    return any(not torch.equal(a[k].detach().cpu(), b[k].detach().cpu()) for k in a)


def check_steps(who: str, reported: int, optimizer_steps: int, changed: bool, max_steps: int | None) -> None:
    if max_steps is not None and max(reported, optimizer_steps) > max_steps:
        raise StepBudgetError(
            f"{who} took {max(reported, optimizer_steps)} steps ({optimizer_steps} optimiser steps, {reported} reported) "
            f"with budget max_steps={max_steps}; loop over range(budget.steps(n))"
        )
    if reported == 0 and (optimizer_steps or changed):
        seen = f"took {optimizer_steps} optimiser steps" if optimizer_steps else "changed the weights"
        raise StepBudgetError(f"{who} {seen} but reported no steps; call ctx.step(loss) once per optimiser step")
