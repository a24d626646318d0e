"""Where the default run's time goes: per task, the jobs' unlearning, sampling, judging and overhead.

    python benchmarks/run_cost.py                  # read results/records (a finished `make run`)
    python benchmarks/run_cost.py --results DIR
    python benchmarks/run_cost.py --run --out DIR  # run `unlearn-bench run` first (--suite, default mini) and time it

Per job (seconds of one worker; the scheduler runs one job per core): unlearning = `cost.unlearn_seconds`;
sampling = the evaluation's image generation (`cost.eval_sample_seconds`); judging = the rest of the
evaluation (classifier/CLIP/NudeNet/attack); eval setup = what judging in a process of its own costs
(`cost.eval_setup_seconds`: building the task and its Original there and loading the method's weights);
overhead = wall − the rest (the method process's fork and task build, the sample strip, the record). A printed figure, not a timed test: quote it with the machine's load.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.runner.records import iter_records  # noqa: E402


def split(records) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for r in records:
        if not r.ok:
            continue
        c = r.cost
        wall = float(r.get("wall_seconds") or 0.0)
        unlearn, ev = c.unlearn_seconds or 0.0, c.eval_seconds or 0.0
        sampling = c.eval_sample_seconds or 0.0
        row = out[r.task]
        row["jobs"] += 1
        row["wall"] += wall
        row["unlearning"] += unlearn
        row["sampling"] += sampling
        row["judging"] += ev - sampling
        setup = float((r.get("cost") or {}).get("eval_setup_seconds") or 0.0)  # the judging process's own task + Original + weights
        row["eval setup"] += setup
        row["overhead"] += wall - unlearn - ev - setup
    return out


def report(results: Path, makespan: float | None = None) -> str:
    rows = split(iter_records(results / "records"))
    cols = ("unlearning", "sampling", "judging", "eval setup", "overhead")
    lines = [f"results: {results}; load average at report time: {os.getloadavg()[0]:.2f}", "",
             "| task | jobs | worker-s | " + " | ".join(cols) + " |", "|---|---:|---:|" + "---:|" * len(cols)]
    total: dict[str, float] = defaultdict(float)
    for task in sorted(rows):
        r = rows[task]
        for k, v in r.items():
            total[k] += v
        cells = " | ".join(f"{r[c]:.0f} ({100 * r[c] / r['wall']:.0f}%)" for c in cols)
        lines.append(f"| {task} | {int(r['jobs'])} | {r['wall']:.0f} | {cells} |")
    if total["wall"]:
        cells = " | ".join(f"{total[c]:.0f} ({100 * total[c] / total['wall']:.0f}%)" for c in cols)
        lines.append(f"| all | {int(total['jobs'])} | {total['wall']:.0f} | {cells} |")
    if makespan is not None:
        lines += ["", f"`unlearn-bench run` wall time: {makespan:.1f} s ({os.cpu_count()} cores)"]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=Path("results"))
    ap.add_argument("--run", action="store_true", help="run the suite into --out first and time it")
    ap.add_argument("--out", type=Path, default=None, help="with --run: the results directory (default --results)")
    ap.add_argument("--suite", default="mini")
    args = ap.parse_args(argv)
    makespan = None
    results = args.out or args.results
    if args.run:
        print(f"load average before the run: {os.getloadavg()[0]:.2f}", file=sys.stderr)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "bench.cli", "run", "--suite", args.suite, "--out", str(results)], check=True)
        makespan = time.perf_counter() - t0
    print(report(results, makespan))
    return 0


if __name__ == "__main__":
    sys.exit(main())
