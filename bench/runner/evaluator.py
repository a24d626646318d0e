"""The evaluator: run a suite's pending jobs (Ray or in-process) and write the leaderboard from the
records. The CLI, `submit` and `validate` are thin shells over these functions."""
from __future__ import annotations

from pathlib import Path

from bench.core.atomic import write_text_atomic
from bench.core.fast import parse_overrides
from bench.core.log import get_logger
from bench.runner.dryrun import describe_plan
from bench.runner.plan import JobSpec, TaskEntry, check_timeout, load_suite, plan_jobs
from bench.runner.records import read_record, record_path, scan_records
from bench.runner.sandbox import notice, probe
from bench.runner.scheduler import pending_jobs, run_local, run_ray
from leaderboard.build import build
from leaderboard.score import DEFAULT_RULE
from tasks.base import TASKS

log = get_logger("run")

CLI_TASK_OPTIONS = {"data_root": "data_root", "base_model": "base_model"}  # args attribute -> task option


def with_cli_task_options(suite, args):
    """`--data-root` / `--base-model` become task options of the tasks that have such an option."""
    import dataclasses

    given = {opt: getattr(args, attr) for attr, opt in CLI_TASK_OPTIONS.items() if getattr(args, attr, None)}
    if not given:
        return suite
    entries = list(suite.tasks) + [TaskEntry(t) for t in (getattr(args, "tasks", None) or []) if t not in {e.task for e in suite.tasks}]
    out = []
    for e in entries:
        fields = {f.name for f in dataclasses.fields(TASKS.get(e.task).Config)}
        extra = {k: v for k, v in given.items() if k in fields}
        out.append(dataclasses.replace(e, options={**e.options, **extra}) if extra else e)
    return dataclasses.replace(suite, tasks=out)


def run_suite(suite_ref: str, args, method_refs: list[str] | None = None) -> list[JobSpec]:
    """The suite's jobs (all of them, run or resumed); on a dry run, the plan is printed and none run."""
    fast_paths = getattr(args, "fast_paths", None)
    parse_overrides(fast_paths)  # a typo fails here, before any job starts
    args.out = str(Path(args.out).expanduser().resolve())  # the driver's directory, never a worker's
    suite = with_cli_task_options(load_suite(suite_ref), args)
    if getattr(args, "rehearse", False):  # tiny stand-ins of every model and data set (bench/runner/rehearsal.py)
        from bench.runner.rehearsal import ensure_world, rehearse_suite

        suite = rehearse_suite(suite, ensure_world(), getattr(args, "tasks", None) or ())
    timeout = getattr(args, "timeout", None)
    if timeout is not None:
        check_timeout(timeout, "--timeout")
    jobs = plan_jobs(suite, tasks=args.tasks, methods=method_refs, targets=args.targets, seeds=args.seeds, timeout_s=timeout)
    if not getattr(args, "local", False):  # a fork server started here to describe a file method: the jobs run on Ray workers, not here
        from bench.runner.method_process import method_runner

        method_runner().close()
    todo = pending_jobs(jobs, args.out)
    log.info(f"suite {suite.name}: {len(jobs)} jobs, {len(jobs) - len(todo)} already done, {len(todo)} to run -> {args.out}")
    if getattr(args, "dry_run", False):
        print(describe_plan(suite, jobs, todo))
        return []
    if todo:
        line = notice(probe())  # what a method process gets here, in one line where it is not everything
        if line:
            log.warning(line)
        save = bool(getattr(args, "save_models", False))
        if args.local:
            run_local(todo, args.out, fast_paths=fast_paths, save_models=save)
        else:
            run_ray(todo, args.out, address=args.address, cpus_per_job=args.cpus_per_job, fast_paths=fast_paths, save_models=save)
    return jobs


def write_leaderboard(results: str, fmt: str = "markdown", out: str | None = None, tasks=None, methods=None, echo: bool = True,
                      rule: str = DEFAULT_RULE) -> str:
    if fmt == "markdown":
        out = out or str(Path(results) / "LEADERBOARD.md")
    # markdown: plots go to plots/ next to the file it is written to
    records, ignored = scan_records(results)
    text = build(records, fmt, Path(out).parent if out else None, tasks, methods, ignored=ignored, rule=rule)
    if out:
        write_text_atomic(out, text)
    if echo:
        print(text)
    return text


def count_failed(out: str, jobs) -> int:
    return sum(1 for j in jobs if not ((rec := read_record(record_path(out, j.job_id))) and rec.ok))
