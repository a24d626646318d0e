"""Images/s of the suite's evaluation sampler vs a reference-style per-prompt pipeline loop.

Suite: `DiffusionModel.sample` — batched classifier-free guidance (cond + null in one forward),
per-sample seeded noise, cached text embeddings (cold cache at every timed run, so encoding is
paid), run options from bench/core/fast.py. Naive: a diffusers StableDiffusionPipeline over the same
modules, called once per prompt with a seeded generator, as reference evaluation scripts do.
Both run DDIM (eta 0) with the same steps and guidance; with the same (fp32) options they
produce the same images, which is checked and reported (max |Δ|).
"""
from __future__ import annotations

import dataclasses
import time

import torch

from bench.core.fast import FastPaths, apply_fast_paths

from bench_models import build, naive_pipeline_loop, pipeline_from, sync


def _time(fn, device, repeats: int) -> tuple[float, object]:
    """Best of `repeats` wall times (least disturbed by other processes), and the last result."""
    best, out = float("inf"), None
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        best = min(best, time.perf_counter() - t0)
    return best, out


def _peak_gpu_mb(device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if torch.device(device).type == "cuda" else None


def _reset_peak(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def bench_sampler(
    size: str,
    device: str = "cpu",
    n_prompts: int = 32,
    steps: int = 20,
    guidance: float = 3.0,
    batch_size: int = 128,
    repeats: int = 2,
    resolution: int = 512,
    variants: dict[str, FastPaths] | None = None,
) -> list[dict]:
    """One row per sampler variant: images/s, seconds, peak GPU memory, max |Δ| to the naive loop."""
    model = build(size, device, resolution)
    model.denoiser.eval()
    prompts = [f"a photo of a red object number {i} on a table" for i in range(n_prompts)]
    seeds = list(range(1000, 1000 + n_prompts))
    pipe = pipeline_from(model)
    fp32 = FastPaths(sdpa=True)
    variants = variants or {"suite (fp32)": fp32}

    apply_fast_paths(model, fp32)  # the pipeline shares the UNet: plain fp32 SDPA for it
    naive_loop = lambda: naive_pipeline_loop(pipe, model, prompts, seeds, steps, guidance)  # noqa: E731
    naive_pipeline_loop(pipe, model, prompts[:1], seeds[:1], 1, guidance)  # warm-up (kernels, allocator)
    _reset_peak(device)
    naive_s, naive_imgs = _time(naive_loop, device, repeats)
    naive_mem = _peak_gpu_mb(device)
    rows = []
    for label, fast in variants.items():
        apply_fast_paths(model, fast)

        def suite():
            model._cache.clear()  # cold text-embedding cache: encoding is part of the cost
            return model.sample(prompts, seeds, steps=steps, guidance=guidance, batch_size=batch_size)

        model.sample(prompts, seeds, steps=1, guidance=guidance, batch_size=batch_size)  # warm-up: same shapes (compile)
        _reset_peak(device)
        secs, imgs = _time(suite, device, repeats)
        rows.append({
            "size": size, "sampler": label, "fast_paths": dataclasses.asdict(fast), "images": n_prompts,
            "steps": steps, "guidance": guidance, "batch_size": batch_size, "seconds": secs,
            "images_per_s": n_prompts / secs, "speedup_vs_naive": naive_s / secs,
            "max_abs_diff_vs_naive": float((imgs - naive_imgs).abs().max()),
            "mean_abs_diff_vs_naive": float((imgs - naive_imgs).abs().mean()), "peak_gpu_mb": _peak_gpu_mb(device),
        })
    rows.append({
        "size": size, "sampler": "naive: StableDiffusionPipeline per prompt", "fast_paths": dataclasses.asdict(fp32),
        "images": n_prompts, "steps": steps, "guidance": guidance, "batch_size": 1, "seconds": naive_s,
        "images_per_s": n_prompts / naive_s, "speedup_vs_naive": 1.0, "max_abs_diff_vs_naive": 0.0, "mean_abs_diff_vs_naive": 0.0, "peak_gpu_mb": naive_mem,
    })
    apply_fast_paths(model, fp32)
    return rows
