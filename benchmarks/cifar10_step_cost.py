"""Per-step time and peak memory at CIFAR-10 size: one pretrain step and one unlearning step of
every registered method, on the reference 35.7M-parameter class-conditional UNet (3×32×32).

Weights are random (timings do not depend on their values); data are random images in [-1, 1]
shaped like CIFAR-10 (forget = one class, remain = the other nine, RGD's `remain.meta`).
Defaults: CPU, batch 8, 3 timed steps (plus one warm-up step), fp32, torch threads 2. On CUDA the
reference batch sizes are used (pretrain 128, each method's own defaults for class tasks, full-size
forget/remain sets, RGD's 50-per-class subset) under bf16 autocast (`--autocast none` for fp32).
Step time is the median gap between consecutive optimiser steps after the first (setup such as
SalUn's saliency pass or RGD's subset draw is reported apart). Peak memory: CUDA
max_memory_allocated, or on CPU the process's peak RSS during the method (model + data included).

    python benchmarks/cifar10_step_cost.py [--device cpu|cuda] [--batch 8] [--steps 3] [--threads 2] [--flops]
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.core.adapters.class_conditional import ClassConditionalModel  # noqa: E402
from bench.core.class_training import train_class_conditional  # noqa: E402
from bench.core.context import Budget, RunContext  # noqa: E402
from bench.core.data import UnlearnData  # noqa: E402
from bench.runner.memory import PeakMemory  # noqa: E402
from tasks.cifar.data import CIFAR10_CLASSES  # noqa: E402
from tasks.cifar.models import CIFAR10_RECIPE, CIFAR10_SCHEDULER, CIFAR10_UNET, UNET_GFLOPS_PER_IMAGE  # noqa: E402

TARGET = 3  # cat


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


class TimedContext(RunContext):
    """RunContext that stamps every optimiser step."""

    def step(self, loss, **parts) -> None:
        sync(self.device)
        self.extra.setdefault("stamps", []).append(time.perf_counter())
        super().step(loss, **parts)


def cifar_shaped(n_forget: int, per_class_remain: int, meta: dict, device) -> tuple[UnlearnData, UnlearnData]:
    g = torch.Generator().manual_seed(0)
    others = [c for c in range(10) if c != TARGET]
    r_labels = torch.tensor([c for c in others for _ in range(per_class_remain)])
    forget = UnlearnData(torch.rand(n_forget, 3, 32, 32, generator=g) * 2 - 1, [TARGET] * n_forget, groups=torch.full((n_forget,), TARGET))
    remain = UnlearnData(torch.rand(len(r_labels), 3, 32, 32, generator=g) * 2 - 1, r_labels.tolist(), groups=r_labels, meta=meta)
    return forget.to(device), remain.to(device)


def measure(run, device, steps: int, ctx: TimedContext | None = None) -> dict:
    """Run `run()` (which takes warm-up + `steps` optimiser steps) and summarise its stamps."""
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
    t0 = time.perf_counter()
    with PeakMemory() as mem:
        run()
    stamps = ctx.extra.get("stamps", []) if ctx is not None else run.stamps
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    if not gaps:
        return {"step_s": None, "setup_s": None, "peak_mb": None, "note": f"{len(stamps)} optimiser step(s): nothing to time"}
    step = statistics.median(gaps)
    peak = mem.peak_gpu_mb if torch.device(device).type == "cuda" else mem.peak_host_mb
    return {"step_s": step, "setup_s": max(stamps[0] - t0 - step, 0.0), "peak_mb": peak, "steps_timed": len(gaps)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--batch", type=int, default=None, help="batch size (default: 8 on CPU, the references' on CUDA)")
    ap.add_argument("--steps", type=int, default=3, help="timed optimiser steps (after one warm-up step)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--autocast", choices=["bf16", "none"], default=None, help="default: bf16 on CUDA, none on CPU")
    ap.add_argument("--methods", nargs="+", help="only these methods")
    ap.add_argument("--flops", action="store_true", help="also count the UNet's forward FLOPs (meta device)")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    device = torch.device(a.device)
    cuda = device.type == "cuda"
    autocast = (a.autocast or ("bf16" if cuda else "none")) == "bf16"
    batch = a.batch  # None on CUDA: every method's own reference batch
    if batch is None and not cuda:
        batch = 8
    amp = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if autocast else contextlib.nullcontext
    rows = []

    # -- pretrain step ------------------------------------------------------------------------
    recipe = replace(CIFAR10_RECIPE, steps=a.steps + 1, batch_size=batch or CIFAR10_RECIPE.batch_size, warmup=1)
    n_data = 50_000 if cuda else 10 * recipe.batch_size
    g = torch.Generator().manual_seed(0)
    x, y = torch.rand(n_data, 3, 32, 32, generator=g) * 2 - 1, torch.arange(n_data) % 10

    class Pretrain:
        stamps: list = []

        def __call__(self):
            def stamp(step, loss):
                sync(device)
                self.stamps.append(time.perf_counter())

            train_class_conditional(recipe, x, y, CIFAR10_CLASSES, device=device, progress=stamp,
                                    autocast_dtype=torch.bfloat16 if autocast else None)

    r = measure(Pretrain(), device, a.steps)
    rows.append(("pretrain (recipe)", recipe.batch_size, r, "bf16 autocast" if autocast else "fp32"))

    # -- unlearning step of each registered method ----------------------------------------------
    from methods.base import METHODS

    per_class = 50 if cuda else 1  # RGD's balanced subset: 450 images (reference) or 9 on CPU
    meta = {"per_class": per_class, "neighbours": [5, 2, 4, 6, 7, 0, 1, 8, 9], "class_names": CIFAR10_CLASSES,
            "pretrain_recipe": replace(CIFAR10_RECIPE, batch_size=batch or CIFAR10_RECIPE.batch_size)}
    forget, remain = cifar_shaped(5000 if cuda else max(64, batch or 64), 5000 if cuda else max(50, batch or 50), meta, device)
    wanted = a.methods or ["original", "finetune", "retrain", "graddiff", "salun", "esd-u", "esd-x", "rg", "rgd"]
    registered = set(METHODS.names())
    for name in wanted:
        if name not in registered:
            rows.append((name, None, None, "not registered yet: skipped"))
            continue
        cls = METHODS.get(name)
        if "class" not in cls.task_kinds:
            rows.append((name, None, None, "does not apply to class tasks"))
            continue
        overrides = {"steps": a.steps + 1} if any(f.name == "steps" for f in fields(cls.HParams)) else {}
        if batch is not None and any(f.name == "batch_size" for f in fields(cls.HParams)):
            overrides["batch_size"] = batch
        hp = cls.default_hparams("class", **overrides)
        model = ClassConditionalModel.from_config(CIFAR10_UNET, CIFAR10_SCHEDULER, CIFAR10_CLASSES).to(device)
        ctx = TimedContext(device=device, seed=0, task_kind="class", num_classes=10)
        method = cls(hp)

        def run(method=method, model=model, ctx=ctx):
            with amp():
                method.unlearn(model, forget, remain, Budget(max_steps=a.steps + 1), ctx)

        try:
            r = measure(run, device, a.steps, ctx)
        except Exception as exc:  # noqa: BLE001 - one method's failure is a row, not the end
            rows.append((name, getattr(hp, "batch_size", None), None, f"failed: {type(exc).__name__}: {exc}"[:120]))
            continue
        rows.append((name, getattr(hp, "batch_size", None), r, r.get("note", "")))
        del model, method

    # -- report ------------------------------------------------------------------------------
    dev_name = torch.cuda.get_device_name(device) if cuda else f"CPU, {a.threads} torch threads"
    print(f"CIFAR-10 size (35.7M-param UNet, 3×32×32), {dev_name}, {'bf16 autocast' if autocast else 'fp32'}, "
          f"batch {batch if batch is not None else 'reference per method'}, median of {a.steps} timed steps after 1 warm-up\n")
    mem_col = "peak GPU MB" if cuda else "peak host RSS MB"
    print(f"| step | batch | s/step | setup s | {mem_col} | note |")
    print("|---|---:|---:|---:|---:|---|")
    for name, b, r, note in rows:
        if r is None or r.get("step_s") is None:
            print(f"| {name} | {b if b is not None else '–'} | – | – | – | {note or (r or {}).get('note', '')} |")
        else:
            print(f"| {name} | {b if b is not None else '–'} | {r['step_s']:.3f} | {r['setup_s']:.2f} | {r['peak_mb']:.0f} | {note} |")
    if a.flops:
        from diffusers import UNet2DModel
        from torch.utils.flop_counter import FlopCounterMode

        with torch.device("meta"):
            unet = UNet2DModel(**CIFAR10_UNET, num_class_embeds=11)
            with FlopCounterMode(display=False) as fc:
                unet(torch.randn(1, 3, 32, 32), torch.tensor([10]), class_labels=torch.tensor([3]))
        print(f"\nforward GFLOPs per image: {fc.get_total_flops() / 1e9:.2f} (UNET_GFLOPS_PER_IMAGE = {UNET_GFLOPS_PER_IMAGE})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
