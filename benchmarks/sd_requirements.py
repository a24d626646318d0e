"""What an SD v1.4 job needs, measured on a random-weight model of the exact SD v1.4 architecture.

No weights needed: UNet2DConditionModel / CLIPTextModel / AutoencoderKL are built from SD v1.4's
configs (bench/core/adapters/random_models.py; tokenizer from open_clip's shipped BPE), wrapped in the benchmark's TextToImageModel, and
timed for sampling (batched CFG, DDIM) and for one training step (what every method repeats).
Timings do not depend on weight values. Default: CPU at reduced resolution; `--device cuda
--resolution 512` gives the protocol's numbers where an accelerator exists.

    python benchmarks/sd_requirements.py [--device cpu] [--resolution 256] [--steps 3] [--threads 2]
"""
from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

import torch


def build_random_sd14(resolution: int, device: str):
    """SD v1.4's architecture (bench/core/adapters/configs/sd-v1-4/) with random weights, in memory, latents of
    resolution // 8 (the UNet's sample_size; 512 px is the published 64)."""
    from bench.core.adapters.random_models import random_sd_modules, sd14_config
    from bench.core.adapters.text_encoders import HFCLIPTextEncoder
    from bench.core.adapters.text_to_image import TextToImageModel

    config = sd14_config()
    config = {**config, "unet": {**config["unet"], "sample_size": resolution // 8}}
    m = random_sd_modules(Path(tempfile.mkdtemp()) / "tokenizer", config)
    enc = HFCLIPTextEncoder(m["tokenizer"], m["text_encoder"], "random CLIP ViT-L/14 text")
    return TextToImageModel(m["unet"], enc, m["scheduler"], m["vae"]).to(device)


def sync(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--resolution", type=int, default=256)
    ap.add_argument("--steps", type=int, default=3, help="DDIM steps timed (extrapolated to 50)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None, help="also write the figures here")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    model = build_random_sd14(a.resolution, a.device)
    build_s = time.perf_counter() - t0
    n_unet = sum(p.numel() for p in model.denoiser.parameters())
    n_text = sum(p.numel() for p in model.text_encoder.model.parameters())
    n_vae = sum(p.numel() for p in model.vae.parameters())
    if a.device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()

    model.sample(["warm up"], [0], steps=1, guidance=7.5)  # text-encoder + kernels warm-up
    sync(a.device)
    t0 = time.perf_counter()
    model.sample(["a photo of a cat"], [1], steps=a.steps, guidance=7.5)
    sync(a.device)
    sample_s = time.perf_counter() - t0

    # one training step of the full UNet (Adam), batch 1, as the methods repeat it
    m = model.trainable_copy()
    opt = torch.optim.Adam(m.denoiser.parameters(), lr=1e-5)
    x0 = torch.randn(1, *m.sample_shape, device=a.device)
    cond = m.condition(["a photo of a cat"])
    times = []
    for _ in range(2):
        sync(a.device)
        t0 = time.perf_counter()
        noise = torch.randn_like(x0)
        t = m.random_timesteps(1)
        loss = ((m.predict_noise(m.add_noise(x0, noise, t), t, cond) - noise) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sync(a.device)
        times.append(time.perf_counter() - t0)
    out = {
        "device": a.device,
        "threads": a.threads,
        "resolution": a.resolution,
        "params_M": {"unet": n_unet / 1e6, "text_encoder": n_text / 1e6, "vae": n_vae / 1e6},
        "build_s": round(build_s, 1),
        "timed_steps": a.steps,
        "sample_s_per_image_timed_steps": round(sample_s, 2),
        "sample_s_per_image_50_steps_est": round(sample_s / a.steps * 50, 1),
        "train_step_s_batch1": round(times[-1], 2),
        "peak_host_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }
    if a.device.startswith("cuda"):
        out["peak_gpu_mem_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    print(json.dumps(out, indent=2))
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    main()
