"""How the verdict depends on evaluation size and per-job work: one unlearning per job, many evaluations.

    python benchmarks/eval_size.py --out /tmp/eval-size                      # run (concept task, 3 targets)
    python benchmarks/eval_size.py --out /tmp/eval-size --report-only        # re-print the table

Each job of the suite (default: `mini`'s methods on mini-shapes-concept, targets cross/circle/square)
unlearns once; the model is snapshotted after `--steps` optimiser steps (a 50-step snapshot of a
100-step run is what a 50-step run computes: the methods' learning rates are constant) and every
snapshot is evaluated with each `--sample-steps`, at the largest `--prompts` count. Smaller prompt
counts need no new images: an evaluation set of n prompts is the first n of a larger one (the same
seeded prompt order, the same noise seeds), so they are the records' per-instance values truncated.
For every (unlearning steps, sample steps, prompts) the leaderboard's own aggregation gives the mean
width of the score intervals, the pairs of methods its paired bands separate, and how many of the
reference setting's (the largest) separated pairs it keeps or reverses. A printed report, not a test.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import itertools
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.core.context import Budget, RunContext  # noqa: E402
from bench.core.instances import to_record  # noqa: E402
from bench.runner.job import base_record, evaluate, seed_everything  # noqa: E402
from bench.runner.plan import load_suite, plan_jobs  # noqa: E402
from bench.runner.plugins import resolve_method  # noqa: E402
from tasks.base import TASKS  # noqa: E402


def snapshotting(ctx, model, at: set, snapshots: dict):
    """The harness's step counter, plus a copy of the denoiser's weights at each step count in `at`."""
    count = ctx.step

    def step(loss, **parts):
        count(loss, **parts)
        if ctx.steps_done in at:
            snapshots[ctx.steps_done] = copy.deepcopy(model.denoiser.state_dict())

    return step


def write(out: Path, steps: int, sample_steps: int, job_id: str, rec: dict) -> None:
    d = out / f"steps{steps}-sample{sample_steps}" / "records"
    d.mkdir(parents=True, exist_ok=True)
    (d / f"{job_id}.json").write_text(json.dumps(rec))


def run(args) -> None:
    suite = load_suite(args.suite)
    jobs = plan_jobs(suite, tasks=[args.task], targets=args.targets, methods=args.methods)
    for spec in jobs:
        torch.set_num_threads(args.threads)
        task_cls = TASKS.get(spec.task)
        sized = "eval_prompts" in {f.name for f in dataclasses.fields(task_cls.Config)}  # class tasks: fixed sample counts
        task = task_cls.make({**spec.task_options, **({"eval_prompts": max(args.prompts)} if sized else {})})
        method_cls = resolve_method(spec.method)
        hparams = method_cls.default_hparams(task.kind, **spec.hparams)
        seed_everything(spec.seed)
        ctx = RunContext(device=torch.device("cpu"), seed=spec.seed, task_kind=task.kind)
        inst = task.build(spec.target, ctx)
        original = inst.model.frozen_copy()
        snapshots: dict = {}
        ctx.step = snapshotting(ctx, inst.model, set(args.steps), snapshots)
        t0 = time.perf_counter()
        method_cls(hparams).unlearn(inst.model, inst.forget, inst.remain, Budget(max_steps=max(args.steps)), ctx)
        unlearn_s = time.perf_counter() - t0
        final = copy.deepcopy(inst.model.denoiser.state_dict())
        evaluated = {}
        for s in args.steps:
            if not snapshots and evaluated:  # no steps (Original, UCE): one model, its records serve every step count
                for t, rec in evaluated.items():
                    write(args.out, s, t, spec.job_id, rec)
                continue
            inst.model.denoiser.load_state_dict(snapshots.get(s, final))
            inst.model.denoiser.eval()
            for t in args.sample_steps:
                inst.evaluation.sampler["steps"] = t
                inst.evaluation.original_images = {}  # retention: Original's images under this sampler
                inst._samples.clear()
                t1 = time.perf_counter()
                metrics, directions, per, _ = evaluate(task, inst, original, ctx)
                rec = {**base_record(spec), "status": "ok", "task_kind": task.kind, "metrics": metrics, "directions": directions,
                       "instances": to_record(per), "task_config": {"sample_steps": t},
                       "cost": {"unlearn_seconds": unlearn_s, "eval_seconds": time.perf_counter() - t1}}
                evaluated[t] = rec
                write(args.out, s, t, spec.job_id, rec)
        print(f"{spec.label} {spec.target}: unlearn {unlearn_s:.1f} s", file=sys.stderr, flush=True)


def truncated(rec: dict, n: int) -> dict:
    """The record an n-prompt evaluation would have written: every set's first n instances."""
    from bench.core.instances import PerInstance, from_record

    full = from_record(rec["instances"])
    if all(len(p.ids) <= n for p in full.values()):
        return rec
    per = {c: PerInstance(p.set, p.ids[:n], p.values[:n], p.reduce) for c, p in full.items()}
    metrics = {**rec["metrics"], **{c: p.value for c, p in per.items()}}
    rename = {c: c.replace(f"n={len(full[c].ids)}", f"n={n}") for c in per}
    return {**rec, "metrics": {rename.get(c, c): v for c, v in metrics.items()},
            "directions": {rename.get(c, c): v for c, v in rec["directions"].items()},
            "instances": to_record({rename[c]: p for c, p in per.items()}), "task_config": {**rec["task_config"], "eval_prompts": n}}


def images_per_job(rec: dict) -> int:
    """Evaluation images one job generates: the instances of each distinct evaluation set."""
    from bench.core.instances import from_record

    return sum({p.set: len(p.ids) for p in from_record(rec["instances"]).values()}.values())


def report(args) -> str:
    from leaderboard.aggregate import aggregate
    from leaderboard.rank import score_bands, separated_pairs

    rows, verdicts = [], {}
    for s, t, n in itertools.product(sorted(args.steps), sorted(args.sample_steps), sorted(args.prompts)):
        d = args.out / f"steps{s}-sample{t}" / "records"
        if not d.exists():
            continue
        recs = [truncated(json.loads(p.read_text()), n) for p in sorted(d.glob("*.json"))]
        (table,) = aggregate(recs)
        ranked = table.rows[~table.rows["reference"]]
        width = float((ranked["score ci_hi"] - ranked["score ci_lo"]).mean())
        pairs = separated_pairs(table)
        bands = score_bands(table, pairs)
        verdicts[(s, t, n)] = pairs
        order = " > ".join(f"{r}({bands[r][0]}–{bands[r][1]})" for r in ranked.sort_values("score mean", ascending=False)["row"])
        rows.append((s, t, n, width, pairs, order, images_per_job(recs[0])))
    ref = verdicts[max(verdicts, key=lambda k: (k[0], k[1], k[2]))]
    lines = [f"eval-size study: {args.task}, targets {', '.join(args.targets)}; load average {os.getloadavg()[0]:.2f}", "",
             "| unlearn steps | sample steps | prompts | images/job | mean score CI width | separated pairs | kept of ref | reversed |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s, t, n, width, pairs, _, images in rows:
        kept = len(pairs & ref)
        reversed_ = len({(b, a) for a, b in pairs} & ref)
        lines.append(f"| {s} | {t} | {n} | {images} | {width:.3f} | {len(pairs)} | {kept}/{len(ref)} | {reversed_} |")
    lines += ["", "Order (point rank, band) per setting:", ""]
    lines += [f"- {s} steps, {t} sample steps, {n} prompts: {order}" for s, t, n, _, _, order, _ in rows]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--suite", default="mini")
    ap.add_argument("--task", default="mini-shapes-concept")
    ap.add_argument("--targets", nargs="+", default=["cross", "circle", "square"])
    ap.add_argument("--methods", nargs="+", default=None)
    ap.add_argument("--steps", nargs="+", type=int, default=[50, 100], help="unlearning steps to snapshot at")
    ap.add_argument("--sample-steps", nargs="+", type=int, default=[10, 20])
    ap.add_argument("--prompts", nargs="+", type=int, default=[8, 16, 32])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args(argv)
    if not args.report_only:
        run(args)
    print(report(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
