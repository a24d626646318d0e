"""FLOPs per UNet step (sampling: one CFG forward at 2×batch; training: forward + backward) and the
achieved FLOP/s; on a GPU with a known peak also the MFU (bench/runner/flops.py)."""
from __future__ import annotations

import statistics
import time

import torch

from bench.core.fast import FastPaths, apply_fast_paths
from bench.runner.flops import count_flops, mfu, peak_tflops, sampling_step, training_step

from bench_models import build, sync


def _median_time(fn, device, repeats: int, zero_grad=None) -> float:
    fn()  # warm-up (allocator, kernels, compile)
    times = []
    for _ in range(repeats):
        if zero_grad:
            zero_grad()
        sync(device)
        t0 = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _precision(fast: FastPaths, device, training: bool) -> str:
    dtype = fast.autocast_dtype(training=training) if torch.device(device).type == "cuda" else None
    if dtype is torch.bfloat16:
        return "bf16"
    if dtype is torch.float16:
        return "fp16"
    return "tf32" if fast.tf32 and torch.device(device).type == "cuda" else "fp32"


def load_model(size: str, device: str, resolution: int = 512):
    if size == "mini-digits":
        from bench.core.adapters.class_conditional import ClassConditionalModel
        from tasks.mini_digits import MODEL_DIR

        return ClassConditionalModel.load(MODEL_DIR, device=device)
    return build(size, device, resolution)


def bench_flops(
    size: str,
    device: str = "cpu",
    sample_batch: int = 64,
    train_batch: int = 64,
    repeats: int = 3,
    fast: FastPaths | None = None,
    resolution: int = 512,
    model=None,
) -> list[dict]:
    fast = fast or FastPaths.default_for(device)
    model = model or load_model(size, device, resolution)
    counting = FastPaths(**{**fast.to_dict(), "compile": False})  # FLOPs do not depend on compilation
    gpu = torch.cuda.get_device_name(0) if torch.device(device).type == "cuda" else None
    rows = []
    for kind, batch in (("sampling (CFG, 2×batch fwd)", sample_batch), ("training (fwd+bwd)", train_batch)):
        training = kind.startswith("training")
        model.denoiser.train(training).requires_grad_(training)
        step = training_step(model, batch) if training else sampling_step(model, batch)
        apply_fast_paths(model, counting)
        flops = count_flops(step)
        apply_fast_paths(model, fast)
        zero = (lambda: model.denoiser.zero_grad(set_to_none=True)) if training else None
        cuda = torch.device(device).type == "cuda"
        if cuda:
            model.denoiser.zero_grad(set_to_none=True)
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        secs = _median_time(step, device, repeats, zero)
        peak_mb = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
        precision = _precision(fast, device, training)
        peak = peak_tflops(gpu, precision)
        rows.append({
            "size": size, "step": kind, "batch": batch, "gflop": flops / 1e9, "seconds": secs,
            "gflop_per_s": flops / secs / 1e9, "precision": precision, "device": gpu or "cpu",
            "peak_tflops": peak, "mfu": mfu(flops, secs, peak), "peak_gpu_mb": peak_mb,
            "params_M": sum(p.numel() for p in model.denoiser.parameters()) / 1e6,
        })
    model.denoiser.zero_grad(set_to_none=True)
    model.denoiser.eval()
    return rows
