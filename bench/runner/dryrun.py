"""`run --dry-run`: the plan (jobs, GPUs, images to generate, estimated GPU hours) without loading
any weights or data.

GPU-hour estimate, per job = (images generated × FLOPs per image + unlearning steps × FLOPs per
step) / an assumed sustained throughput (`EFFECTIVE_TFLOPS`, one H100). FLOPs per image = DDIM
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
from bench.runner.plan import JobSpec, Suite
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


def method_steps(method: str, hp, info: dict, budget: dict) -> int:
    steps = getattr(hp, "steps", 0)
    if steps is None:  # e.g. Retrain: the pretrain recipe's own count
        steps = info.get("pretrain_steps", 0)
    cap = budget.get("max_steps")
    return int(steps if cap is None else min(steps, cap))


def job_gflops(task_name: str, task_obj, info: dict, job: JobSpec) -> float | None:
    """Estimated GFLOPs of one job, or None when the task declares no cost."""

    cost = {**DOCUMENTED_COSTS.get(task_name, {}), **{k: v for k, v in info.items() if k.startswith("gflops")}}
    if "gflops_forward" not in cost:
        return None
    fwd = float(cost["gflops_forward"])
    steps = int(info.get("sample_steps", getattr(task_obj.config, "sample_steps", 50)))
    guidance = float(info.get("guidance", getattr(task_obj.config, "guidance", 2.0)))
    per_image = steps * (2 if guidance != 1.0 else 1) * fwd + float(cost.get("gflops_decode", 0.0))
    images = int(info.get("eval_images", 0)) + int(info.get("unlearn_images", 0))
    method = method_handle(job.method)
    hp = method.resolved(task_obj.defaults_key(), job.hparams)
    train = method_steps(method.name, hp, info, job.budget) * step_images(method.name, hp, info) * 3 * fwd
    return images * per_image + train


def describe_plan(suite: Suite, jobs: list[JobSpec], todo: list[JobSpec]) -> str:
    lines = [f"suite: {suite.name} — {suite.description}".rstrip(" —"), f"jobs: {len(jobs)} ({len(todo)} to run)", ""]
    lines.append("| task | method | targets | seeds | jobs | GPU per job | eval images per job | est. GPU h |")
    lines.append("|---|---|---:|---:|---:|---:|---:|---:|")
    by = Counter((j.task, j.label) for j in jobs)
    total_images = 0
    hours_by_task: dict[str, float] = defaultdict(float)
    unknown_cost: set[str] = set()
    for (task, label), n in sorted(by.items()):
        tj = [j for j in jobs if j.task == task and j.label == label]
        task_obj = TASKS.get(task).make(tj[0].task_options)
        info = task_obj.plan_info()
        per_job = int(info.get("eval_images", 0)) + int(info.get("unlearn_images", 0))
        total_images += per_job * n
        gflops = job_gflops(task, task_obj, info, tj[0])
        if gflops is None or not info.get("gpu", False):
            unknown_cost.add(task)
            hours = "–"
        else:
            h = gflops * n / (EFFECTIVE_TFLOPS * 1e3) / 3600
            hours_by_task[task] += h
            hours = f"{h:.1f}"
        lines.append(
            f"| {task} | {label} | {len({j.target for j in tj})} | {len({j.seed for j in tj})} | {n} | "
            f"{1 if info.get('gpu', False) else '0 (CPU ok)'} | {per_job} | {hours} |"
        )
    lines.append("")
    lines.append(f"images to generate in all: {total_images}")
    if hours_by_task:
        per_task = ", ".join(f"{t} {h:.1f}" for t, h in sorted(hours_by_task.items()))
        lines.append(
            f"estimated GPU hours per task (one H100 at an assumed {EFFECTIVE_TFLOPS:.0f} TFLOP/s; see bench/runner/dryrun.py): "
            f"{per_task}; total {sum(hours_by_task.values()):.1f}"
        )
    if unknown_cost:
        lines.append(f"no GPU estimate (CPU tasks or no declared cost): {', '.join(sorted(unknown_cost))}")
    return "\n".join(lines)
