"""FLOPs of one denoiser step and the share of the device's peak they achieve (MFU).

Counts come from torch.utils.flop_counter.FlopCounterMode (matmuls, convolutions, attention;
elementwise ops are not counted, as is the convention for MFU). CPU SDPA kernels are not in
torch's table, so they are added here with torch's own attention formula; the count is then the
same whichever attention processor runs.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

aten = torch.ops.aten

# Dense (no sparsity) peak TFLOP/s from the vendors' data sheets, keyed by a substring of
# torch.cuda.get_device_name(); the first match wins, so more specific names come first.
PEAK_TFLOPS: tuple[tuple[str, dict[str, float]], ...] = (
    ("H200", {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}),
    ("H100 PCIe", {"bf16": 756.0, "fp16": 756.0, "tf32": 378.0, "fp32": 51.2}),
    ("H100 NVL", {"bf16": 835.0, "fp16": 835.0, "tf32": 417.5, "fp32": 60.0}),
    ("H100", {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9}),  # SXM5 / HBM3
    ("A100", {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5}),
)


def peak_tflops(device_name: str | None, precision: str) -> float | None:
    """Peak dense TFLOP/s of a named GPU at `precision` (bf16|fp16|tf32|fp32); None if unknown (CPUs)."""
    if not device_name:
        return None
    for key, table in PEAK_TFLOPS:
        if key.lower() in device_name.lower():
            return table.get(precision)
    return None


def mfu(flops: float, seconds: float, peak: float | None) -> float | None:
    """Model FLOP utilisation: achieved FLOP/s over the peak (TFLOP/s); None without a known peak."""
    if peak is None or seconds <= 0:
        return None
    return flops / seconds / (peak * 1e12)


def _sdpa_cpu(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


def _sdpa_cpu_backward(grad_out_shape, query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


def _custom_mapping() -> dict:
    mapping = {}
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu"):
        mapping[aten._scaled_dot_product_flash_attention_for_cpu] = _sdpa_cpu
    if hasattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward"):
        mapping[aten._scaled_dot_product_flash_attention_for_cpu_backward] = _sdpa_cpu_backward
    return mapping


def count_flops(fn: Callable[[], object]) -> int:
    """Total FLOPs of what `fn()` runs (it is run once)."""
    with FlopCounterMode(display=False, custom_mapping=_custom_mapping()) as counter:
        fn()
    return int(counter.get_total_flops())


def sampling_step(model, batch: int, guidance: float = 2.0, keys=None) -> Callable[[], object]:
    """One DDIM denoiser step at `batch` images: guided_noise (cond + null in one forward of 2×batch)."""
    keys = list(keys) if keys is not None else _default_keys(model, batch)
    cond = model.condition(keys)
    model.null_condition(batch)  # encode the null prompt now: the text encoder is not part of the step
    x = torch.randn(batch, *model.sample_shape, device=model.device)
    t = torch.full((batch,), model.num_train_timesteps // 2, device=model.device, dtype=torch.long)

    def step():
        with torch.no_grad():
            return model.guided_noise(x, t, cond, guidance)

    return step


def training_step(model, batch: int, keys=None) -> Callable[[], object]:
    """Forward + backward of L_simple at `batch` (the optimiser update is elementwise, not counted)."""
    keys = list(keys) if keys is not None else _default_keys(model, batch)
    cond = model.condition(keys)
    x0 = torch.randn(batch, *model.sample_shape, device=model.device)
    gen = torch.Generator().manual_seed(0)

    def step():
        noise = torch.randn(x0.shape, generator=gen).to(model.device)
        t = model.random_timesteps(batch, gen)
        loss = ((model.predict_noise(model.add_noise(x0, noise, t), t, cond) - noise) ** 2).mean()
        loss.backward()
        return loss

    return step


def _default_keys(model, batch: int) -> list:
    if model.kind == "class":
        return [i % model.num_classes for i in range(batch)]
    return [f"a photo of object {i}" for i in range(batch)]
