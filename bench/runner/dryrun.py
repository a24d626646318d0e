"""`run --dry-run`: the plan (jobs, GPUs, images to generate, estimated GPU hours) without loading
any weights or data.

GPU-hour estimate, per job = (images generated × FLOPs per image + unlearning steps × FLOPs per
step + an attack's optimisation passes × 3 forward FLOPs + the images a method generates itself,
Concept Ablation's anchors, `method_images`) / an assumed sustained throughput
(`EFFECTIVE_TFLOPS`, one H100); per task and options, once: the images every job reads from the cache
(`task_images`: Original's training pairs and reference images). FLOPs per image = DDIM
steps × (2 forwards with classifier-free guidance, else 1) × the denoiser's forward FLOPs (+ a VAE
decode for latent models); FLOPs per step = 3 × forward FLOPs (forward + backward) × the image
passes one optimiser step of the method makes (`step_images`, from its resolved hyper-parameters).
Forward FLOPs come from the task's `plan_info()["gflops_forward"]` or, for tasks that do not declare
them, `DOCUMENTED_COSTS`; all were counted with torch.utils.flop_counter.FlopCounterMode on the
meta device (no weights). The throughput is an assumption, not a measurement: scale the hours by
100 / (your measured TFLOP/s), e.g. from benchmarks/cifar10_step_cost.py on your GPU.
"""
from __future__ import annotations

from collections import Counter, defaultdict

from bench.runner.method_info import method_handle
from bench.runner.plan import JobSpec, Suite, planned_sets
from tasks.base import TASKS

EFFECTIVE_TFLOPS = 100.0  # assumed sustained TFLOP/s of one H100 on these UNets (mixed bf16/TF32)

# forward GFLOPs per image of tasks whose plan_info does not declare them (FlopCounterMode, meta device)
DOCUMENTED_COSTS = {
    # SD v1.4 UNet at 512 px (64×64 latents, 77 text tokens) and the VAE decoder, per image
    "sd-nudity": {"gflops_forward": 803.3, "gflops_decode": 2514.5},
    "sd-vangogh": {"gflops_forward": 803.3, "gflops_decode": 2514.5},
}


def step_images(method: str, hp, info: dict) -> float:
    """Forward+backward image passes of one optimiser step (forward-only passes count 1/3)."""
    b = float(getattr(hp, "batch_size", 1) or 1)
    if method == "finetune":
        return b
    if method in ("rgd", "rg"):
        per_class = getattr(hp, "remain_per_class", None) or info.get("per_class", 50)
        subset = per_class * max(info.get("num_classes", 10) - 1, 1)
        return b + (subset if getattr(hp, "remain_gradient", "batch") == "subset" else b)
    if method in ("esd-u", "esd-x"):
        return 1 + (25 * 2 + 2) / 3  # DDIM to t_enc (mean 25 of 50 steps, guided) + 2 frozen forwards, batch 1
    if method == "salun":
        return 2 * b + b / 3  # forget + remain, plus the frozen forward on c'
    if method == "retrain":
        return float(info.get("pretrain_batch_size", b))
    return 2 * b  # a forget and a remain batch (graddiff and most methods)


def method_images(method: str, hp) -> tuple[int, int]:
    """(images, DDIM steps each) a method generates with the original model before it trains: Concept Ablation's
    anchor images (with classifier-free guidance)."""
    if method == "ca":
        return int(getattr(hp, "anchor_images", 0)), int(getattr(hp, "anchor_sample_steps", 50))
    return 0, 0


def method_steps(method: str, hp, info: dict, budget: dict) -> int:
    steps = getattr(hp, "steps", 0)
    if steps is None:  # e.g. Retrain: the pretrain recipe's own count
        steps = info.get("pretrain_steps", 0)
    cap = budget.get("max_steps")
    return int(steps if cap is None else min(steps, cap))


def declared_costs(task_name: str, info: dict) -> dict:
    """The task's forward (and decode) GFLOPs per image: its plan_info's, else DOCUMENTED_COSTS."""
    return {**DOCUMENTED_COSTS.get(task_name, {}), **{k: v for k, v in info.items() if k.startswith("gflops")}}


def image_gflops(task_name: str, task_obj, info: dict, steps: int | None = None) -> float | None:
    """GFLOPs of one generated image (DDIM steps × guided forwards + a decode); None when the task declares no cost.
    `steps`: the sampler's steps (default: the task's)."""
    cost = declared_costs(task_name, info)
    if "gflops_forward" not in cost:
        return None
    if steps is None:
        steps = int(info.get("sample_steps", getattr(task_obj.config, "sample_steps", 50)))
    guidance = float(info.get("guidance", getattr(task_obj.config, "guidance", 2.0)))
    return steps * (2 if guidance != 1.0 else 1) * float(cost["gflops_forward"]) + float(cost.get("gflops_decode", 0.0))


def forward_gflops(task_name: str, info: dict) -> float:
    return float(declared_costs(task_name, info)["gflops_forward"])


def job_gflops(task_name: str, task_obj, info: dict, job: JobSpec) -> float | None:
    """Estimated GFLOPs of one job (not counting the task's cached images, `task_gflops`), or None when the task
    declares no cost."""
    per_image = image_gflops(task_name, task_obj, info)
    if per_image is None:
        return None
    fwd = forward_gflops(task_name, info)
    method = method_handle(job.method)
    hp = method.resolved(task_obj.defaults_key(), job.hparams)
    train = method_steps(method.name, hp, info, job.budget) * step_images(method.name, hp, info) * 3 * fwd
    attack = int(info.get("attack_passes", 0)) * 3 * fwd
    n, steps = method_images(method.name, hp)
    made = n * image_gflops(task_name, task_obj, info, steps) if n else 0.0
    return int(info.get("eval_images", 0)) * per_image + train + attack + made


def task_gflops(task_name: str, task_obj, info: dict) -> float | None:
    """GFLOPs of the images a task generates once per options and caches for all its jobs (Original's)."""
    per_image = image_gflops(task_name, task_obj, info)
    return None if per_image is None else int(info.get("task_images", 0)) * per_image


def gpu_hours(gflops: float) -> float:
    return gflops / (EFFECTIVE_TFLOPS * 1e3) / 3600


def describe_sets(jobs: list[JobSpec]) -> list[str]:
    """One line per task and options: the sets its build makes at the suite's options (built here, without weights)."""
    by_task: dict[tuple[str, str], tuple[dict, set]] = {}
    for (task, target, _), sizes in planned_sets(jobs).items():
        by_task.setdefault((task, repr(sorted(sizes.items()))), (sizes, set()))[1].add(target)
    lines = []
    for (task, _), (sizes, targets) in sorted(by_task.items()):
        which = f"{len(targets)} targets" if len(targets) > 1 else f"target {next(iter(targets))}"
        lines.append(f"- {task} ({which}): " + ", ".join(f"{k} {v}" for k, v in sizes.items()))
    return lines


def describe_plan(suite: Suite, jobs: list[JobSpec], todo: list[JobSpec]) -> str:
    lines = [f"suite: {suite.name} — {suite.description}".rstrip(" —"), f"jobs: {len(jobs)} ({len(todo)} to run)", ""]
    lines.append("| task | method | targets | seeds | jobs | GPU per job | eval images per job | est. GPU h |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|")
    by = Counter((j.task, j.label) for j in jobs)
    total_images = 0
    hours_by_task: dict[str, float] = defaultdict(float)
    retrain_hours = 0.0
    unknown_cost: set[str] = set()
    task_rows: dict[tuple[str, str], tuple] = {}
    for (task, label), n in sorted(by.items()):
        tj = [j for j in jobs if j.task == task and j.label == label]
        task_obj = TASKS.get(task).make(tj[0].task_options)
        info = task_obj.plan_info()
        per_job = int(info.get("eval_images", 0))
        total_images += per_job * n
        for j in tj:  # the cached images, once per task and options
            task_rows.setdefault((task, repr(sorted(j.task_options.items()))), (task, task_obj, info))
        gflops = job_gflops(task, task_obj, info, tj[0])
        if gflops is None or not info.get("gpu", False):
            unknown_cost.add(task)
            hours = "–"
        else:
            h = gpu_hours(gflops * n)
            hours_by_task[task] += h
            retrain_hours += h if method_handle(tj[0].method).name == "retrain" else 0.0
            hours = f"{h:.1f}"
        lines.append(
            f"| {task} | {label} | {len({j.target for j in tj})} | {len({j.seed for j in tj})} | {n} | "
            f"{1 if info.get('gpu', False) else '0 (CPU ok)'} | {per_job} | {hours} |"
        )
    for task, task_obj, info in task_rows.values():
        images = int(info.get("task_images", 0))
        if not images:
            continue
        total_images += images
        gflops = task_gflops(task, task_obj, info)
        hours = "–"
        if gflops is not None and info.get("gpu", False):
            hours_by_task[task] += gpu_hours(gflops)
            hours = f"{gpu_hours(gflops):.1f}"
        lines.append(f"| {task} | (Original's cached images, once) | | | | | {images} | {hours} |")
    lines.append("")
    lines.append(f"images to generate in all: {total_images}")
    if hours_by_task:
        per_task = ", ".join(f"{t} {h:.1f}" for t, h in sorted(hours_by_task.items()))
        total = sum(hours_by_task.values())
        lines.append(
            f"estimated GPU hours per task (one H100 at an assumed {EFFECTIVE_TFLOPS:.0f} TFLOP/s sustained: the cost model's "
            f"throughput, not a measurement; see bench/runner/dryrun.py): {per_task}; total {total:.1f}"
            + (f"; without Retrain {total - retrain_hours:.1f}" if retrain_hours else "")
        )
    if unknown_cost:
        lines.append(f"no GPU estimate (CPU tasks or no declared cost): {', '.join(sorted(unknown_cost))}")
    lines += ["", "sets each task builds at these options (built now, without weights):", *describe_sets(jobs)]
    return "\n".join(lines)
