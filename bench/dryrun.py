"""`run --dry-run`: the plan (jobs, GPUs, images to generate) without loading any weights."""
from __future__ import annotations

from collections import Counter

from bench.plan import JobSpec, Suite


def describe_plan(suite: Suite, jobs: list[JobSpec], todo: list[JobSpec]) -> str:
    from tasks.base import TASKS

    lines = [f"suite: {suite.name} — {suite.description}".rstrip(" —"), f"jobs: {len(jobs)} ({len(todo)} to run)", ""]
    lines.append("| task | method | targets | seeds | jobs | GPU per job | eval images per job |")
    lines.append("|---|---|---:|---:|---:|---:|---:|")
    by = Counter((j.task, j.label) for j in jobs)
    total_images = 0
    for (task, label), n in sorted(by.items()):
        tj = [j for j in jobs if j.task == task and j.label == label]
        task_obj = TASKS.get(task).make(tj[0].task_options)
        info = task_obj.plan_info()
        per_job = int(info.get("eval_images", 0)) + int(info.get("unlearn_images", 0))
        total_images += per_job * n
        lines.append(
            f"| {task} | {label} | {len({j.target for j in tj})} | {len({j.seed for j in tj})} | {n} | "
            f"{1 if info.get('gpu', False) else '0 (CPU ok)'} | {per_job} |"
        )
    lines.append("")
    lines.append(f"images to generate in all: {total_images}")
    return "\n".join(lines)
