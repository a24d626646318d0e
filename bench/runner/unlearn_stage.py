"""The method stage of a job, as it runs in the method's own process (bench/runner/method_process.py):
build the task, resolve and run the method, save the denoiser's weights as the job's artifact."""
from __future__ import annotations

import os
import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from bench.core.context import Budget, RunContext
from bench.core.errors import BenchError, PluginError
from bench.core.fast import FastPaths, apply_fast_paths
from bench.runner.artifacts import apply_state_dict, load_state_dict
from bench.runner.memory import PeakMemory, Timer
from bench.runner.plugins import resolve_method
from bench.runner.steps import count_optimizer_steps
from methods.base import hparams_dict
from tasks.base import TASKS, build_instance

WEIGHTS_FILE = "weights.safetensors"


@dataclass
class UnlearnRequest:
    """What the child needs: the job (task, target, method, hyper-parameters, seed, budget), the
    method's source when it is a file, and where to run. Plain data: it is pickled to the child."""

    spec: Any  # bench.runner.plan.JobSpec
    sources: dict = field(default_factory=dict)  # ref -> MethodSource, this job's method only
    device: str = "cpu"
    threads: int | None = None
    fast_paths: Any = None
    start_from: str | None = None  # a chain's later step: the artifact its method starts from (bench/runner/chains.py)
    workdir: str = ""  # set by the runner: the child's working directory, where the artifact goes
    env: dict = field(default_factory=dict)  # set by the runner: the harness's environment and import path at the
    sys_path: list = field(default_factory=list)  # time of the call (the child adopts them; its fork server is older)
    confinement: Any = None  # set by the runner: bench.runner.sandbox.Plan, what the child confines itself to

    @property
    def warm(self) -> tuple:
        """The task whose files the fork server should hold before forking the child."""
        return (self.spec.task, self.spec.task_options)

    def run(self) -> "Unlearned":
        return unlearn_stage(self)


@dataclass
class Unlearned:
    """What the child hands back: the artifact's path and the method stage's counters (as the child
    measured them: the weights are checked here, the counters cannot be)."""

    weights: str
    method_name: str
    hparams_resolved: dict
    stats: dict
    steps: int
    optimizer_steps: int
    unlearn_seconds: float
    peak_host_mb: float
    peak_gpu_mb: float | None
    images_generated: int
    step_seconds: float | None = None  # median time between the method's steps (RunContext.step_seconds)
    sandbox: str = ""  # set by the runner: one line, which parts of the confinement applied (bench/runner/sandbox.py)
    confinement: dict = field(default_factory=dict)  # set by the runner: what the child reported, per part


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def unlearn_stage(request: UnlearnRequest) -> Unlearned:
    """In the method's process (bench/runner/method_process.py): build the task, unlearn, save the
    denoiser's weights as the artifact. Its counters go back to the harness with the weights."""
    from safetensors.torch import save_file

    spec = request.spec
    if request.threads:
        torch.set_num_threads(request.threads)
    device = torch.device(request.device)
    task = TASKS.get(spec.task).make(spec.task_options)
    method_cls = resolve_method(spec.method, request.sources)
    hparams = method_cls.default_hparams(task.defaults_key(), **spec.hparams)
    seed_everything(spec.seed)
    ctx = RunContext(device=device, seed=spec.seed, task_kind=task.kind)
    inst = build_instance(task, spec.target, ctx, spec.erased)
    ctx.num_classes = inst.evaluation.num_classes
    if request.start_from:  # a chain's later step: the method unlearns from the previous step's model, not Original's
        state, _ = load_state_dict(request.start_from)
        if apply_state_dict(inst.model.denoiser, state, f"the previous step's model {request.start_from}") != len(inst.model.denoiser.state_dict()):
            raise BenchError(f"the previous step's model {request.start_from} does not hold every parameter of the task's UNet")
    # the unlearning stage's precision: train_autocast (default fp32, the references'), not evaluation's autocast
    apply_fast_paths(inst.model, FastPaths.resolve(device, request.fast_paths).for_unlearning())
    method = method_cls(hparams)
    with count_optimizer_steps() as counted, PeakMemory() as mem, Timer() as timer:
        stats = method.unlearn(inst.model, inst.forget, inst.remain, Budget(**spec.budget), ctx)
    if stats is not None and not isinstance(stats, dict):
        raise PluginError(f"method {method_cls.name!r}: unlearn must return None or a dict of statistics, not {type(stats).__name__}")
    weights = {k: v.detach().to("cpu", copy=True).contiguous() for k, v in inst.model.denoiser.state_dict().items()}
    save_file(weights, os.path.join(request.workdir, WEIGHTS_FILE))
    return Unlearned(
        weights=WEIGHTS_FILE, method_name=method_cls.name, hparams_resolved=hparams_dict(hparams),
        stats={k: v for k, v in (stats or {}).items() if isinstance(v, (int, float, str, bool, list)) or v is None},
        steps=ctx.steps_done, optimizer_steps=counted.optimizer_steps, unlearn_seconds=round(timer.seconds, 3),
        peak_host_mb=round(mem.peak_host_mb, 1), peak_gpu_mb=None if mem.peak_gpu_mb is None else round(mem.peak_gpu_mb, 1),
        images_generated=ctx.images_generated, step_seconds=None if (sec := ctx.step_seconds()) is None else round(sec, 4),
    )
