"""Speed of the suite, measured side by side in one run; prints a markdown report.

1. Sampler: images/s of `DiffusionModel.sample` (batched CFG, seeded per-sample noise, cached text
   embeddings, bench/core/fast.py options) vs a StableDiffusionPipeline built from the same
   components and called once per prompt, same steps/guidance (and the same images, checked).
2. Methods: steps/s, setup time and peak memory of every registered unlearning method (mini-digits).
3. FLOPs per UNet step (sampling with CFG, training fwd+bwd), achieved GFLOP/s; MFU on GPUs.
On CUDA it adds the SD v1.4 architecture (random weights) at 512 px: fp32 vs bf16+SDPA sampling,
and training-step time/memory under fp32, bf16 and bf16 + gradient checkpointing.

    python benchmarks/speed.py [--threads 2] [--device cpu|cuda] [--quick] [--json out.json]
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.core.fast import FastPaths  # noqa: E402


def machine_load(sample_s: float = 1.0) -> dict:
    """What else was running: load average and other processes' CPU use (in cores) over `sample_s`."""
    import psutil

    me = os.getpid()
    procs = [p for p in psutil.process_iter() if p.pid != me]
    for p in procs:
        try:
            p.cpu_percent(None)
        except psutil.Error:
            pass
    time.sleep(sample_s)
    busy = []
    for p in procs:
        try:
            pct = p.cpu_percent(None)
            if pct > 5:
                busy.append((round(pct / 100, 2), " ".join(p.cmdline()[:3])[:80]))
        except psutil.Error:
            pass
    return {"loadavg": [round(x, 2) for x in os.getloadavg()], "other_cores_busy": round(sum(b[0] for b in busy), 2),
            "busy_processes": sorted(busy, reverse=True)[:5]}


def machine_info(threads: int, device: str) -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": threads, "torch": torch.__version__, "device": device}
    if torch.device(device).type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def free_memory() -> None:
    """Drop the previous section's models before the next builds its own (SD v1.4 twice would not fit small GPUs)."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def fmt(x, nd: int = 2) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:,.{nd}f}"
    return str(x)


def table(headers: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(fmt(c) if not isinstance(c, str) else c for c in r) + " |" for r in rows]
    return "\n".join(out)


def fast_label(fp: dict) -> str:
    on = [k for k in ("compile", "gradient_checkpointing", "tf32") if fp.get(k)]
    return ", ".join([fp.get("autocast") or "fp32", "SDPA" if fp.get("sdpa") else "classic attn", *on])


def sampler_section(rows: list[dict]) -> str:
    body = [[r["size"], r["sampler"], r["images"], r["steps"], r["batch_size"], r["seconds"], r["images_per_s"],
             f"{r['speedup_vs_naive']:.1f}×", f"{r['mean_abs_diff_vs_naive']:.1e} / {r['max_abs_diff_vs_naive']:.1e}",
             fmt(r["peak_gpu_mb"], 0)] for r in rows]
    return table(["model", "sampler", "images", "DDIM steps", "batch", "s", "images/s", "vs naive", "mean / max abs Δ vs naive",
                  "peak GPU MB"], body)


def fidelity_section(rows: list[dict]) -> str:
    body = [[r["model"], r["images"], r["steps"], r["low"], r["fp32_s"], r["low_s"], f"{r['mean_abs_diff']:.1e}",
             f"{r['max_abs_diff']:.2f}", r["judge"], f"{r['judge_value']:.3f}",
             "–" if r["fp32_acc"] is None else f"{r['fp32_acc']:.2f} / {r['low_acc']:.2f}"] for r in rows]
    return table(["model", "images", "steps", "low precision", "fp32 s", "low s", "mean abs Δ", "max abs Δ", "judge", "value",
                  "class acc fp32 / low"], body)


def methods_section(rows: list[dict]) -> str:
    body = []
    for r in rows:
        if "skipped" in r or "error" in r:
            body.append([r["method"], "–", "–", "–", "–", "–", "–", r.get("skipped") or r["error"][:120]])
            continue
        sps = 1 / r["step_s"] if r["step_s"] else None
        batch = ", ".join(f"{k}={v}" for k, v in r["batch"].items()) or "–"
        body.append([r["method"], r["steps"], batch, r["setup_s"], r["step_s"] * 1e3 if r["step_s"] else None, sps,
                     fmt(r["peak_host_mb"], 0) + (f" (GPU {r['peak_gpu_mb']:.0f})" if r.get("peak_gpu_mb") else ""), ""])
    return table(["method", "steps", "batch", "setup s", "ms/step", "steps/s", "peak RSS MB", "note"], body)


def flops_section(rows: list[dict]) -> str:
    body = [[r["size"], fmt(r["params_M"], 2), r["step"], r["batch"], r["precision"], r["gflop"], r["seconds"] * 1e3,
             r["gflop_per_s"], f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a (CPU)" if r["device"] == "cpu" else "no peak",
             fmt(r.get("peak_gpu_mb"), 0)] for r in rows]
    return table(["model", "params M", "UNet step", "batch", "precision", "GFLOP/step", "ms/step", "GFLOP/s", "MFU", "peak GPU MB"], body)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--sections", default="sampler,fidelity,methods,flops", help="comma list of sampler,fidelity,methods,flops")
    ap.add_argument("--methods", nargs="*", default=None, help="default: every registered method")
    ap.add_argument("--method-steps", type=int, default=10)
    ap.add_argument("--prompts", type=int, default=32, help="images per sampler measurement (mini sizes)")
    ap.add_argument("--sample-steps", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=2, help="timed repetitions (best is reported)")
    ap.add_argument("--quick", action="store_true", help="tiny settings: a smoke run of every code path")
    ap.add_argument("--sd14", choices=["auto", "on", "off"], default="auto", help="SD v1.4-architecture rows (auto: on CUDA)")
    ap.add_argument("--sd14-resolution", type=int, default=512)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile variants (slow first call)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--markdown", default=None)
    a = ap.parse_args(argv)
    if a.quick:
        a.prompts, a.sample_steps, a.repeats, a.method_steps = 4, 2, 1, 2
    torch.set_num_threads(a.threads)
    dev = a.device
    cuda = torch.device(dev).type == "cuda"
    sections = set(a.sections.split(","))
    report: dict = {"started": _dt.datetime.now().isoformat(timespec="seconds"), "machine": machine_info(a.threads, dev),
                    "load_before": machine_load(), "defaults": FastPaths.default_for(dev).to_dict()}
    t_start = time.perf_counter()
    md = [f"# unlearn-bench speed ({report['started']})", "",
          f"Machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, torch {torch.__version__}, "
          f"{a.threads} torch threads, device {dev}" + (f" ({report['machine']['gpu']})" if cuda else "") + ".",
          f"Load before: loadavg {report['load_before']['loadavg']}, other processes busy ≈ "
          f"{report['load_before']['other_cores_busy']} cores {report['load_before']['busy_processes'][:2]}.",
          f"Fast-path defaults on {dev}: {fast_label(report['defaults'])}.", ""]

    if "sampler" in sections:
        from sampler_speed import bench_sampler

        variants = {"suite, fp32 + SDPA": FastPaths()}
        if cuda:
            variants["suite, bf16 + SDPA (CUDA default)"] = FastPaths.default_for(dev)
        else:
            variants["suite, bf16 autocast (opt-in on CPU)"] = FastPaths(autocast="bf16")
        if a.compile:
            variants["suite, + torch.compile"] = FastPaths(**{**FastPaths.default_for(dev).to_dict(), "compile": True})
        rows = []
        rows += bench_sampler("mini-shapes", dev, a.prompts, a.sample_steps, 3.0, 128, a.repeats, variants=variants)
        rows += bench_sampler("tiny-sd", dev, a.prompts, a.sample_steps, 7.5, 128, a.repeats, variants=variants)
        if a.sd14 == "on" or (a.sd14 == "auto" and cuda):
            n = 2 if a.quick else 8
            rows += bench_sampler("sd14", dev, n, 2 if a.quick else 50, 7.5, n, 1, resolution=a.sd14_resolution, variants=variants)
        report["sampler"] = rows
        md += ["## 1. Evaluation sampler: suite vs naive per-prompt pipeline", "",
               "Same random-weight model, DDIM steps, guidance and seeds; Δ = pixel difference in [0, 1] to the naive images "
               "(fp32: the same images up to float summation order, which random weights amplify over the steps). "
               "Best of the timed runs; suite runs start with an empty text-embedding cache.", "",
               sampler_section(rows), ""]

    if "fidelity" in sections:
        from precision_fidelity import bench_fidelity

        low = FastPaths.default_for(dev) if cuda else FastPaths(autocast="bf16")
        rows = bench_fidelity(dev, low, n=20 if a.quick else 100)
        report["fidelity"] = rows
        md += ["## 1b. Reduced precision on the trained mini checkpoints: what the judges see", "",
               "fp32 vs bf16 autocast sampling, same seeds and keys (random-weight rows above amplify rounding, so fidelity is "
               "judged here on trained models by the suite's own judges).", "",
               fidelity_section(rows), ""]

    free_memory()
    if "methods" in sections:
        from method_speed import bench_methods, registered_methods

        names = a.methods or registered_methods()
        expected = ["original", "finetune", "graddiff", "rgd", "rg", "retrain", "salun", "esd-u", "esd-x"]
        names = list(dict.fromkeys(names + ([m for m in expected if m not in names] if not a.methods else [])))
        rows = bench_methods(names, steps=a.method_steps, threads=a.threads, device=dev)
        report["methods"] = rows
        md += [f"## 2. Unlearning methods on mini-digits-class (target 0, {a.method_steps} steps, default hyper-parameters)", "",
               "Each method in a fresh process; ms/step = median between optimiser steps; setup = time to the first step; "
               "peak RSS of that process (includes the task's data and classifier).", "", methods_section(rows), ""]

    free_memory()
    if "flops" in sections:
        from flops_speed import bench_flops

        rows = []
        rows += bench_flops("mini-digits", dev, 256, 128, a.repeats + 1)
        rows += bench_flops("mini-shapes", dev, 64, 64, a.repeats + 1)
        rows += bench_flops("tiny-sd", dev, 64, 64, a.repeats + 1)
        if a.sd14 == "on" or (a.sd14 == "auto" and cuda):
            from bench_models import build_sd14

            sd = build_sd14(dev, a.sd14_resolution)
            sb, tb = (1, 1) if a.quick else (8, 4)
            variants = [FastPaths(sdpa=True, tf32=cuda), FastPaths.default_for(dev),
                        FastPaths(**{**FastPaths.default_for(dev).to_dict(), "gradient_checkpointing": True})]
            if a.compile:
                variants.append(FastPaths(**{**FastPaths.default_for(dev).to_dict(), "compile": True}))
            for fp in variants:
                for r in bench_flops("sd14", dev, sb, tb, 1 if a.quick else 3, fast=fp, model=sd):
                    rows.append({**r, "size": f"sd14 @{a.sd14_resolution}px [{fast_label(fp.to_dict())}]"})
        report["flops"] = rows
        md += ["## 3. FLOPs per UNet step and achieved throughput", "",
               "FlopCounterMode counts (matmul, conv, attention); sampling = one CFG forward of 2×batch; training = forward + "
               "backward of L_simple; median time per step; MFU = achieved / peak dense FLOP/s of the GPU at that precision.", "",
               flops_section(rows), ""]

    report["wall_s"] = round(time.perf_counter() - t_start, 1)
    report["load_after"] = machine_load()
    md += [f"Benchmark wall time {report['wall_s']} s; load after: loadavg {report['load_after']['loadavg']}, "
           f"other processes busy ≈ {report['load_after']['other_cores_busy']} cores."]
    text = "\n".join(md)
    print(text)
    if a.markdown:
        Path(a.markdown).write_text(text + "\n")
    if a.json:
        Path(a.json).write_text(json.dumps(report, indent=2, default=str) + "\n")
    return report


if __name__ == "__main__":
    main()
