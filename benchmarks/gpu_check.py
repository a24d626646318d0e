"""The GPU check: one command, inside one short device call, that runs the suite's GPU path on SD v1.4's architecture.

No weights are downloaded: every model is random, of the real architecture, built from configs kept in the
repository and read back through the suite's own loaders (bench/runner/rehearsal.py's world at size FULL):
SD v1.4 (UNet2DConditionModel 859.5M, CLIP ViT-L/14 text encoder, AutoencoderKL; 512 px) from
bench/core/adapters/configs/sd-v1-4/, the CIFAR-10 DDPM of its reference recipe (35.7M, untrained), an open_clip
ViT-B/32 judge; CIFAR-10, Inception and FID statistics are the rehearsal's stand-ins. Timings and memory do not depend
on weight values; nothing here is a result.

1. Jobs: each method of the paper suite on sd-nudity and cifar10-class (target 0, seed 0) through the ordinary
   harness, as `run --local` runs them: the method in a process forked from the fork server (fp32 unlearning without
   TF32), evaluation in this process (bf16 autocast on CUDA), a few optimiser steps and evaluation cut to a few images
   (`MODES`). Per job: seconds per optimiser step (the record's cost.step_seconds), peak GPU memory of the method's
   process, ok or the one-line cause.
2. Sampler: SD at 512 px, 50 DDIM steps, batch 1 / 8 / 32 (bf16 autocast on CUDA): images/s of the suite's sampler
   (`DiffusionModel.sample`) and of diffusers' StableDiffusionPipeline over the same modules, their ratio, and MFU from
   FLOPs counted on the model (torch's FlopCounterMode) against the device's peak (bench/runner/flops.py).
3. The fork server: CUDA uninitialised there, and a fresh child of it can use the GPU.

Whatever does not fit `--budget-s` (counted from the start, the build included) is "skipped (budget)". The report
(tables, commit, torch and CUDA versions) is printed and written to `--out` (default benchmarks/RESULTS-<device>.md).
Ray is not needed (jobs run in-process, one at a time, as `--local`); nor is the network or any cache (everything is
built under `--work`). `--device cpu --tiny` runs the same code on the rehearsal's tiny stand-ins (CI runs a slice).

    python benchmarks/gpu_check.py [--budget-s 420] [--device cuda] [--methods rgd ...] [--tasks sd-nudity ...]
    python benchmarks/gpu_check.py --device cpu --tiny
The device call that runs it: benchmarks/GPU.md.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import gc
import os
import re
import statistics
import sys
import tempfile
import time
import traceback
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _p in (str(ROOT), str(HERE)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import torch  # noqa: E402

SD_TASK, CIFAR_TASK = "sd-nudity", "cifar10-class"
# the order jobs run in (what the budget cuts last comes last): the SD UNet's two-gradient methods first
ORDER = [(SD_TASK, m) for m in ("rgd", "graddiff", "salun", "esd-u")] + \
        [(CIFAR_TASK, m) for m in ("rgd", "graddiff", "salun", "retrain", "rg", "finetune", "esd-u", "original")] + \
        [(SD_TASK, m) for m in ("esd-x", "finetune", "uce", "ca", "original")]
# Concept Ablation makes 1,000 anchor images (50 DDIM steps, fp32) before it trains: 8 at 10 steps here
METHOD_HPARAMS = {"ca": {"anchor_images": 8, "anchor_sample_steps": 10}}


@dataclass(frozen=True)
class Mode:
    """Sizes of one run of the check: the world's stand-ins, the task options on top of the rehearsal's, the cap on
    optimiser steps, the sampler's settings, a first guess of each task's job time (for the budget)."""

    name: str
    options: dict = field(hash=False)
    steps: int = 4
    sample_steps: int = 50
    batches: tuple = (1, 8, 32)
    guess_s: dict = field(default_factory=dict, hash=False)
    budget_s: float = 420.0  # the default --budget-s


MODES = {
    # 8 training pairs (the methods' batch), one image per evaluation set at the protocol's 50 steps, sampling batch 8
    "full": Mode("full", {SD_TASK: {"forget_pairs": 8, "eval_images": 1, "sample_steps": 50, "batch_size": 8},
                          CIFAR_TASK: {"sample_steps": 50}}, steps=4, guess_s={SD_TASK: 45.0, CIFAR_TASK: 15.0}),
    # the attack's 80 optimisation passes are most of a tiny SD job's time: off on the CPU (on in "full")
    "tiny": Mode("tiny", {SD_TASK: {"forget_pairs": 8, "eval_images": 1, "attack": False}, CIFAR_TASK: {}}, steps=3,
                 sample_steps=4, batches=(1, 4), guess_s={SD_TASK: 8.0, CIFAR_TASK: 8.0}, budget_s=100.0),
}


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


class Clock:
    """The budget, counted from the start."""

    def __init__(self, budget_s: float):
        self.start, self.budget = time.monotonic(), budget_s

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.start)

    def used(self) -> float:
        return time.monotonic() - self.start


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# -- 1. jobs through the harness ---------------------------------------------------------------------
def check_suite(world, mode: Mode, tasks: list[str]):
    """The paper suite as the check runs it: the rehearsal's transformation on the world (its stand-ins, `rehearsal`
    set), then the mode's options, target 0 / seed 0, one row per method (no ablation rows), the step cap and
    METHOD_HPARAMS."""
    from bench.runner.plan import load_suite
    from bench.runner.rehearsal import rehearse_suite

    suite = rehearse_suite(load_suite("paper"), world)
    entries = [replace(te, options={**te.options, **mode.options.get(te.task, {})}, seeds=(0,),
                       targets=("0",) if te.task == CIFAR_TASK else te.targets)
               for te in suite.tasks if te.task in tasks]
    methods = [replace(m, hparams={**m.hparams, **METHOD_HPARAMS.get(m.method, {})}) for m in suite.methods if m.label == m.method]
    return replace(suite, name="gpu-check", tasks=entries, methods=methods, budget={**suite.budget, "max_steps": mode.steps})


def run_jobs(world, mode: Mode, tasks: list[str], methods: list[str] | None, clock: Clock, out_dir: Path, log,
             rows: list[dict], progress=lambda: None) -> list[dict]:
    """Each job in ORDER through the harness (scheduler.run_local: what `run --local` runs), while the budget lasts;
    each row is appended to `rows` as it comes, and `progress()` called (the report is rewritten after every job)."""
    from bench.runner.plan import plan_jobs
    from bench.runner.scheduler import run_local

    jobs = {(j.task, j.method): j for j in plan_jobs(check_suite(world, mode, tasks), methods=methods)}
    order = [k for k in ORDER if k in jobs] + [k for k in jobs if k not in ORDER]
    seen: dict[str, list[float]] = {}
    for task, method in order:
        spec = jobs[(task, method)]
        guess = statistics.mean(seen[task]) if task in seen else mode.guess_s[task]
        left = clock.left()
        if left < guess:
            rows.append({"task": task, "method": method, "status": f"skipped (budget: {left:.0f} s left, ~{guess:.0f} s needed)"})
            continue
        log(f"job {task} / {method} ({left:.0f} s of the budget left)")
        record = run_local([replace(spec, timeout_s=max(left, 1.0))], out_dir, progress=False)[0]
        seen.setdefault(task, []).append(float(record.get("wall_seconds") or 0.0))
        rows.append(job_row(task, method, record))
        log(f"  {rows[-1]['status']} in {record.get('wall_seconds')} s")
        progress()
    return rows


def job_row(task: str, method: str, record: dict) -> dict:
    cost = record.get("cost") or {}
    hp = record.get("hparams_resolved") or {}
    ok = record.get("status") == "ok"
    error = " ".join(str(record.get("error", "")).split())
    fast = record.get("fast_paths") or {}
    return {
        "task": task, "method": method, "status": "ok" if ok else f"failed: {error[:300]}",
        "step_s": cost.get("step_seconds"), "steps": cost.get("steps"),
        "peak_gpu_mb": cost.get("peak_gpu_mem_mb"), "peak_host_mb": cost.get("peak_host_mem_mb"),
        "unlearn_s": cost.get("unlearn_seconds"), "eval_s": cost.get("eval_seconds"), "job_s": record.get("wall_seconds"),
        "batch": ", ".join(f"{k}={v}" for k, v in hp.items() if "batch" in k or k in ("anchor_images", "anchor_sample_steps")),
        "precision": f"unlearn {fast.get('train_autocast') or 'fp32'}{' +TF32' if fast.get('tf32') else ''}, eval {fast.get('autocast') or 'fp32'}"
        if fast else "",
    }


# -- 2. the sampler against diffusers' pipeline --------------------------------------------------------
def run_sampler(world, mode: Mode, device: torch.device, clock: Clock, stop_at_left: float, log) -> tuple[list[dict], dict]:
    """Suite sampler vs StableDiffusionPipeline at each batch size of the mode, same modules, steps, guidance and
    precision (the suite's autocast for evaluation; the pipeline under the same autocast). Stops, marking the rest
    skipped, when less than `stop_at_left` seconds of the budget would remain."""
    from bench.core.fast import FastPaths, apply_fast_paths
    from bench.runner.dryrun import DOCUMENTED_COSTS
    from bench.runner.flops import count_flops, mfu, peak_tflops, sampling_step
    from tasks.base import TASKS

    from bench_models import pipeline_from

    guidance = 7.5
    model = TASKS.get(SD_TASK).make({"model": str(world.sd)}).load_base_model(device)  # the task's own loader
    fast = FastPaths.resolve(device)
    apply_fast_paths(model, fast)
    model.denoiser.eval()
    pipe = pipeline_from(model)
    precision = fast.autocast or "fp32"
    amp = (lambda: torch.autocast(device.type, dtype=torch.bfloat16)) if fast.autocast == "bf16" else nullcontext
    unet_step = count_flops(sampling_step(model, 1, guidance))  # one CFG step of one image: two UNet forwards
    with torch.no_grad():
        decode = count_flops(lambda: model.decode(torch.randn(1, *model.sample_shape, device=device)))
    per_image = mode.sample_steps * unet_step + decode  # the text encoder's share (once per prompt) is left out
    documented = DOCUMENTED_COSTS[SD_TASK]
    flops = {"unet_forward_gflops": unet_step / 2 / 1e9, "decode_gflops": decode / 1e9, "per_image_gflops": per_image / 1e9,
             "documented_forward_gflops": documented["gflops_forward"], "documented_decode_gflops": documented["gflops_decode"],
             "precision": precision, "peak_tflops": peak_tflops(device_name(device) if device.type == "cuda" else None, precision)}
    rows = []
    for b in mode.batches:
        prompts = [f"a photo of a red object number {i} on a table" for i in range(b)]
        seeds = list(range(1000, 1000 + b))

        def suite(steps: int, prompts=prompts, seeds=seeds, b=b):
            model._cache.clear()  # cold text-embedding cache: encoding is part of the cost
            return model.sample(prompts, seeds, steps=steps, guidance=guidance, batch_size=b)

        def stock(steps: int, prompts=prompts, seeds=seeds):
            gens = [torch.Generator().manual_seed(s) for s in seeds]
            with amp(), torch.no_grad():
                return pipe(prompts, num_inference_steps=steps, guidance_scale=guidance, generator=gens, output_type="pt").images

        row = {"batch": b, "steps": mode.sample_steps, "precision": precision}
        for name, fn in (("suite", suite), ("pipeline", stock)):
            if clock.left() < stop_at_left:
                row[name] = None
                continue
            fn(1)  # warm-up at the same shapes (kernels, allocator)
            reset_peak(device)
            sync(device)
            t0 = time.perf_counter()
            fn(mode.sample_steps)
            sync(device)
            secs = time.perf_counter() - t0
            row[name] = {"seconds": secs, "images_per_s": b / secs, "peak_gpu_mb": peak_mb(device),
                         "mfu": mfu(per_image * b, secs, flops["peak_tflops"])}
            log(f"sampler batch {b} {name}: {b / secs:.3f} images/s")
        rows.append(row)
    return rows, flops  # the caller frees the models (free_memory)


# -- 3. the fork server --------------------------------------------------------------------------------
def fork_server_state(device: torch.device) -> dict:
    from bench.runner.method_process import ForkServerProbe, method_runner

    runner = method_runner()
    return {"server": runner.server_state(), "child": runner.call(ForkServerProbe(use_cuda=device.type == "cuda"), 120)}


# -- the report ----------------------------------------------------------------------------------------
from speed import fmt, table  # noqa: E402 - the speed benchmark's markdown cells and tables (benchmarks/speed.py)


def versions() -> str:
    from bench.runner.provenance import git_revision, package_versions

    v = package_versions()
    cuda = f", CUDA {torch.version.cuda}" if torch.version.cuda else ""
    libs = ", ".join(f"{k} {v[k]}" for k in ("diffusers", "transformers", "open_clip_torch", "clean-fid", "nudenet") if k in v)
    return f"commit {git_revision()}; Python {sys.version.split()[0]}, torch {torch.__version__}{cuda}; {libs}"


def report(a, device: torch.device, mode: Mode, clock: Clock, world_s: dict, jobs: list[dict] | None, sampler, fork: dict | None,
           errors: list[str] = ()) -> str:
    name = device_name(device)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        machine = f"{name}, {props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs"
    else:
        machine = f"CPU, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
    md = [f"# unlearn-bench GPU check: {name}{' (tiny stand-ins)' if mode.name == 'tiny' else ''}", "",
          f"{_dt.datetime.now().isoformat(timespec='seconds')}; {machine}.", "", versions() + ".", "",
          f"Budget {a.budget_s:.0f} s, used {clock.used():.0f} s. Random weights of the real architectures"
          + (" (SD v1.4 at 512 px from bench/core/adapters/configs/sd-v1-4/, CIFAR-10 DDPM reference recipe, open_clip ViT-B/32)"
             if mode.name == "full" else " (the rehearsal's tiny stand-ins)")
          + ", built here and read through the suite's loaders: speed, memory and whether it runs; not results.", ""]
    md += ["## Build", "", table(["piece", "s"], [[k, v] for k, v in world_s.items()]), ""]
    if errors:
        md += ["## Errors", "", *[f"- {e}" for e in errors], ""]
    if jobs is not None:
        md += [f"## 1. Methods through the harness (`run --local`): {mode.steps} optimiser steps, evaluation cut to a few images", "",
               "Each job: prepare, the method in a process forked from the fork server, evaluation in this process. s/step: the "
               "median time between the method's steps (record cost.step_seconds); peak GPU MB: the method's process "
               "(torch's max allocated); unlearn s includes set-up (SalUn's mask, CA's anchors, ESD's sampling); job s: the "
               f"whole job. Options on top of the rehearsal's: {mode.options}; hyper-parameters on top of the defaults: "
               f"{METHOD_HPARAMS}.", "",
               table(["task", "method", "status", "s/step", "steps", "peak GPU MB", "peak host MB", "unlearn s", "eval s", "job s",
                      "batch", "precision"],
                     [[r["task"], r["method"], r["status"], r.get("step_s"), r.get("steps"), r.get("peak_gpu_mb"), r.get("peak_host_mb"),
                       r.get("unlearn_s"), r.get("eval_s"), r.get("job_s"), r.get("batch") or "–", r.get("precision") or "–"]
                      for r in jobs]), ""]
    if sampler is not None:
        rows, flops = sampler
        md += [f"## 2. Sampler: SD at {mode.name == 'full' and '512 px' or 'tiny size'}, {mode.sample_steps} DDIM steps, "
               f"guidance 7.5, {flops['precision']}", "",
               "Suite: `DiffusionModel.sample` (batched CFG, per-sample seeded noise, cold text-embedding cache); pipeline: "
               "diffusers' StableDiffusionPipeline over the same modules, one call per batch (a list of prompts), the whole call "
               "under the same autocast (the suite autocasts the UNet's forwards; its VAE decodes in fp32). FLOPs counted on "
               f"this model: UNet forward {flops['unet_forward_gflops']:,.4g} GFLOP per image "
               f"(dry run's DOCUMENTED_COSTS: {flops['documented_forward_gflops']}), VAE decode {flops['decode_gflops']:,.4g} "
               f"({flops['documented_decode_gflops']}); per image {flops['per_image_gflops']:,.4g} GFLOP; MFU against "
               f"{fmt(flops['peak_tflops'], 1)} TFLOP/s ({flops['precision']} peak of this device; – where unknown).", "",
               table(["batch", "suite images/s", "pipeline images/s", "suite / pipeline", "suite MFU", "pipeline MFU",
                      "suite peak GPU MB", "pipeline peak GPU MB"],
                     [[r["batch"], *_sampler_cells(r)] for r in rows]), ""]
    if fork is not None:
        s, c = fork["server"], fork["child"]
        md += ["## 3. The fork server", "",
               f"Server (pid {s['pid']}): CUDA initialised {s['cuda_initialized']}; what its fence refused: "
               f"{', '.join(s['cuda_refused']) or 'nothing'}. A fresh child: in torch's bad-fork state {c['cuda_in_bad_fork']}"
               + (f"; putting a tensor on the GPU: {c['cuda_use']}" if "cuda_use" in c else "") + ".", ""]
    return "\n".join(md)


def _sampler_cells(r: dict) -> list:
    s, p = r.get("suite"), r.get("pipeline")
    skipped = "skipped (budget)"
    pct = lambda x: "–" if x is None else f"{100 * x:.1f}%"  # noqa: E731
    return [s["images_per_s"] if s else skipped, p["images_per_s"] if p else skipped,
            f"{s['images_per_s'] / p['images_per_s']:.2f}×" if s and p else "–",
            pct(s["mfu"]) if s else "–", pct(p["mfu"]) if p else "–",
            fmt(s["peak_gpu_mb"], 0) if s else "–", fmt(p["peak_gpu_mb"], 0) if p else "–"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget-s", type=float, help="seconds for everything, the build included (default 420; tiny: 100)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="the rehearsal's tiny stand-ins instead of SD v1.4's size (CPU, CI)")
    ap.add_argument("--methods", nargs="+", help="only these methods (default: every method of the paper suite)")
    ap.add_argument("--tasks", nargs="+", default=[SD_TASK, CIFAR_TASK], choices=[SD_TASK, CIFAR_TASK])
    ap.add_argument("--batches", nargs="+", type=int, help="sampler batch sizes (default 1 8 32; tiny: 1 4)")
    ap.add_argument("--sample-steps", type=int, help="sampler DDIM steps (default 50; tiny: 4)")
    ap.add_argument("--no-sampler", action="store_true")
    ap.add_argument("--no-jobs", action="store_true")
    ap.add_argument("--work", help="where the world, caches and records go (default: a new temporary directory)")
    ap.add_argument("--out", help="the report's file, or a folder for RESULTS-<device>.md (default: benchmarks/)")
    a = ap.parse_args(argv)
    mode = MODES["tiny" if a.tiny else "full"]
    a.budget_s = mode.budget_s if a.budget_s is None else a.budget_s
    clock = Clock(a.budget_s)
    device = torch.device(a.device)
    mode = replace(mode, batches=tuple(a.batches or mode.batches), sample_steps=a.sample_steps or mode.sample_steps)
    work = Path(a.work or tempfile.mkdtemp(prefix="unlearn-bench-gpu-check-")).resolve()
    work.mkdir(parents=True, exist_ok=True)
    # nothing from the network or a cache: every file under `work`
    os.environ.update({"UNLEARN_BENCH_CACHE": str(work / "cache"), "UNLEARN_BENCH_STATE": str(work / "state"),
                       "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HOME": str(work / "hf")})
    if device.type == "cpu" and a.tiny:  # tiny convolutions on a shared machine: more threads only wait for each other
        torch.set_num_threads(1)

    def log(msg: str) -> None:
        print(f"[gpu-check {clock.used():6.1f} s] {msg}", file=sys.stderr, flush=True)

    from bench.runner.rehearsal import FULL, TINY, ensure_world

    log(f"building the {'tiny' if a.tiny else 'full-size'} stand-ins under {work}")
    world_s: dict = {}
    size = replace(TINY, cifar_per_batch=1000, fid_images=500) if a.tiny else FULL  # tiny: a CIFAR-10 stand-in a tenth the size
    world = ensure_world(work / "world", size, timings=world_s,
                         tasks=[SD_TASK] if a.no_jobs else list(dict.fromkeys([SD_TASK, *a.tasks])))  # the sampler reads SD
    log(f"built: {world_s}")
    name = f"RESULTS-{slug(device_name(device))}{'-tiny' if a.tiny else ''}.md"
    out = Path(a.out) if a.out else HERE / name
    if out.is_dir():
        out = out / name
    state: dict = {"sampler": None, "jobs": None, "fork": None, "errors": []}

    def write() -> str:  # after every section and job: a call cut off by its time limit still brings back a report
        text = report(a, device, mode, clock, world_s, state["jobs"], state["sampler"], state["fork"], state["errors"])
        out.write_text(text + "\n")
        return text

    def guarded(section: str, fn):  # one section's failure is a line of the report, not the end of the check
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001
            state["errors"].append(f"{section}: {type(exc).__name__}: {' '.join(str(exc).split())[:500]}")
            log(f"{section} failed:\n{traceback.format_exc()}")
            return None

    if not a.no_sampler:
        stop = a.budget_s / 2 if not a.no_jobs else 0.0  # half the budget stays for the jobs
        state["sampler"] = guarded("sampler", lambda: run_sampler(world, mode, device, clock, stop, log))
        free_memory(device)
        write()
    if not a.no_jobs:
        state["jobs"] = []
        guarded("jobs", lambda: run_jobs(world, mode, a.tasks, a.methods, clock, work / "results", log, state["jobs"], write))
    state["fork"] = guarded("fork server", lambda: fork_server_state(device))
    text = write()
    print(text)
    log(f"done in {clock.used():.0f} s; report: {out}")
    from bench.runner.method_process import method_runner

    method_runner().close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
