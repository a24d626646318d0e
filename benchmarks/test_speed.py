"""pytest-benchmark form of benchmarks/speed.py (kept out of tests/: no timing in unit tests).

    pytest benchmarks/ --benchmark-enable                 # timed, with pytest-benchmark's table
    pytest benchmarks/ --benchmark-enable --benchmark-group-by=param:size
Without --benchmark-enable (the project's default) every case runs once: a smoke check.
"""
from __future__ import annotations

import pytest
import torch

from bench.core.context import Budget, RunContext
from bench.core.fast import FastPaths, apply_fast_paths

from bench_models import build, naive_pipeline_loop, pipeline_from
from flops_speed import load_model

PROMPTS = [f"a photo of a red object number {i}" for i in range(16)]
SEEDS = list(range(16))
STEPS = 10


@pytest.fixture(scope="module", params=["mini-shapes", "tiny-sd"])
def t2i(request):
    torch.set_num_threads(min(2, torch.get_num_threads()))
    model = build(request.param)
    model.denoiser.eval()
    apply_fast_paths(model, FastPaths.resolve(model.device))
    return request.param, model, pipeline_from(model)


def test_sampler_suite(benchmark, t2i):
    size, model, _ = t2i

    def run():
        model._cache.clear()  # cold embedding cache, as in speed.py
        return model.sample(PROMPTS, SEEDS, steps=STEPS, guidance=3.0)

    benchmark.extra_info.update(size=size, images=len(PROMPTS))
    out = benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    assert out.shape[0] == len(PROMPTS)


def test_sampler_naive_pipeline(benchmark, t2i):
    size, model, pipe = t2i
    benchmark.extra_info.update(size=size, images=len(PROMPTS))
    out = benchmark.pedantic(lambda: naive_pipeline_loop(pipe, model, PROMPTS, SEEDS, STEPS, 3.0), rounds=2, iterations=1)
    assert out.shape[0] == len(PROMPTS)


def _registered() -> list[str]:
    from methods.base import METHODS

    return METHODS.names()


@pytest.mark.parametrize("name", _registered())
def test_method_three_steps_mini_digits(benchmark, name):
    """unlearn() for 3 optimiser steps on mini-digits-class (setup included: SalUn's mask, RGD's remain grads)."""
    from methods.base import METHODS
    from tasks.base import TASKS

    task = TASKS.get("mini-digits-class").make({})
    cls = METHODS.get(name)
    if task.kind not in cls.task_kinds:
        pytest.skip(f"{name} is not for {task.kind} tasks")
    device = torch.device("cpu")

    def setup():
        ctx = RunContext(device=device, seed=0, task_kind=task.kind)
        inst = task.build("0", ctx)
        ctx.num_classes = inst.evaluation.num_classes
        apply_fast_paths(inst.model, FastPaths.resolve(device))
        method = cls(cls.default_hparams(task.kind))
        return (method, inst, ctx), {}

    def run(method, inst, ctx):
        method.unlearn(inst.model, inst.forget, inst.remain, Budget(max_steps=3), ctx)
        return ctx.steps_done

    benchmark.extra_info["method"] = name
    benchmark.pedantic(run, setup=setup, rounds=2, iterations=1)


@pytest.mark.parametrize("size", ["mini-digits", "mini-shapes", "tiny-sd"])
def test_unet_training_step(benchmark, size):
    from bench.runner.flops import count_flops, training_step

    model = load_model(size, "cpu")
    model.denoiser.train()
    step = training_step(model, 32)
    flops = count_flops(step)
    benchmark.extra_info.update(size=size, gflop_per_step=flops / 1e9)
    benchmark.pedantic(step, setup=lambda: model.denoiser.zero_grad(set_to_none=True), rounds=3, iterations=1, warmup_rounds=1)
