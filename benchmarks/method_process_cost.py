"""What the method-process boundary costs per job (bench/runner/method_process.py).

    python benchmarks/method_process_cost.py              # mini-digits-class, 2-step GradDiff, 5 jobs each way
    python benchmarks/method_process_cost.py --task mini-shapes-concept --target cross --jobs 3

Times the method stage of the same job two ways: in this process (what the harness did before the
boundary) and in a child forked from the runner's fork server (what every job does now); the
difference is the boundary's cost per job (the fork, the child's own task build with cold caches,
the weights' save and load). The fork server's start, once per worker process, is printed apart. A printed figure, not a timed test: quote it with the machine's load.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from bench.runner.method_process import MethodRunner  # noqa: E402
from bench.runner.plan import JobSpec  # noqa: E402
from bench.runner.unlearn_stage import (  # noqa: E402
    WEIGHTS_FILE,
    UnlearnRequest,
    unlearn_stage,  # noqa: E402
)


def timed(fn, jobs: int) -> list[float]:
    out = []
    for _ in range(jobs):
        t0 = time.perf_counter()
        weights = fn()
        out.append(time.perf_counter() - t0)
        shutil.rmtree(os.path.dirname(weights), ignore_errors=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--task", default="mini-digits-class")
    ap.add_argument("--target", default="0")
    ap.add_argument("--method", default="graddiff")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--jobs", type=int, default=5)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    spec = JobSpec("bench", args.task, {}, args.target, args.method, args.method, {}, 0, {"max_steps": args.steps})
    runner = MethodRunner()

    def here():
        workdir = tempfile.mkdtemp(prefix="unlearn-bench-method-")
        unlearn_stage(UnlearnRequest(spec, {}, "cpu", 1, None, workdir=workdir))
        return os.path.join(workdir, WEIGHTS_FILE)

    def child():
        return runner.unlearn(UnlearnRequest(spec, {}, "cpu", 1, None), None).weights

    here()  # warm this process's caches, as a worker's first job would
    rows = {"in this process": timed(here, args.jobs)}
    first = timed(child, 1)[0]  # includes the fork server's start
    rows["in a forked child"] = timed(child, args.jobs)
    rows["in this process, again"] = timed(here, args.jobs)  # the machine's drift over the run
    runner.close()
    base = statistics.median(rows["in this process"])
    print(f"{args.task}/{args.target} {args.method}, {args.steps} steps; load average {os.getloadavg()[0]:.2f}; median of {args.jobs}")
    print("| method stage | seconds | added per job |\n|---|---:|---:|")
    for name, ts in rows.items():
        print(f"| {name} | {statistics.median(ts):.2f} | {statistics.median(ts) - base:+.2f} |")
    print(f"| the first child (with the fork server's start, once per worker) | {first:.2f} | {first - base:+.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
