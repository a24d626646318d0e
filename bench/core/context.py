"""What a method gets besides the model and data: device, seed, budget, step accounting."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from bench.core.errors import NonFiniteLossError


@dataclass
class Budget:
    """Caps applied on top of a method's own schedule (smoke runs, quick suites)."""

    max_steps: int | None = None

    def steps(self, wanted: int) -> int:
        return wanted if self.max_steps is None else min(wanted, self.max_steps)


@dataclass
class RunContext:
    device: torch.device
    seed: int
    task_kind: str  # "class" | "concept" | "style"
    num_classes: int | None = None
    log: Callable[[str], None] = lambda msg: None
    steps_done: int = 0
    images_generated: int = 0
    eval_sample_seconds: float = 0.0  # wall time the evaluation spent generating images (the rest of it is judging)
    extra: dict = field(default_factory=dict)
    step_times: list = field(default_factory=list)  # time.perf_counter() at each counted step (the harness's step time)

    def __post_init__(self) -> None:
        self.generator = torch.Generator().manual_seed(self.seed)

    def step(self, loss: float | torch.Tensor, **parts: float) -> None:
        """Count one optimiser step; stop the job on a NaN/inf loss (named, with the step)."""
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
        if not math.isfinite(value):
            detail = ", ".join(f"{k}={float(v):.4g}" for k, v in parts.items())
            raise NonFiniteLossError(f"non-finite loss {value} at step {self.steps_done}" + (f" ({detail})" if detail else ""))
        self.steps_done += 1
        self.step_times.append(time.perf_counter())

    def step_seconds(self) -> float | None:
        """The median time between consecutive steps (a step's cost without the set-up before the first); None
        with fewer than two steps."""
        gaps = sorted(b - a for a, b in zip(self.step_times, self.step_times[1:]))
        if not gaps:
            return None
        mid = len(gaps) // 2
        return gaps[mid] if len(gaps) % 2 else (gaps[mid - 1] + gaps[mid]) / 2
