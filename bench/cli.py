"""`unlearn-bench`: run, submit, leaderboard, list, pretrain, validate, fetch."""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from bench.core.errors import BenchError
from bench.core.log import show_on_stderr
from leaderboard.score import DEFAULT_RULE, RULES

DEFAULT_OUT = "results"


def _add_selection(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tasks", nargs="+", help="restrict to these tasks")
    p.add_argument("--targets", nargs="+", help="restrict to these targets (e.g. classes)")
    p.add_argument("--seeds", nargs="+", type=int, help="seeds (default: the suite's)")
    p.add_argument("--out", default=DEFAULT_OUT, help="results directory (records/ and LEADERBOARD.md)")
    p.add_argument("--address", help="existing Ray cluster address (e.g. 'auto'); default: a local instance")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="wall-clock limit per job (default: the suite's timeout_s, else each task's default); submit's smoke run too")
    p.add_argument("--local", action="store_true", help="run jobs in this process, one by one (debugging)")
    p.add_argument("--save-models", action="store_true",
                   help="keep each job's unlearned model as an artifact in RESULTS/models/<job id>/ (diffusers UNet folder + manifest; "
                        "`unlearn-bench evaluate --results RESULTS` re-evaluates them)")
    p.add_argument("--cpus-per-job", type=int, default=None,
                   help="CPU cores Ray reserves per job (= its torch threads); default: cores per GPU, or the cores split between the jobs (≥ 1)")
    p.add_argument("--fast-paths", help="run options, e.g. 'autocast=none,compile=1' (bench/core/fast.py; default: SDPA, bf16 autocast for evaluation on CUDA, fp32 unlearning; train_autocast=bf16 opts in to bf16 unlearning)")
    p.add_argument("--data-root", help="data set root for tasks with a data_root option (e.g. cifar10-class)")
    p.add_argument("--base-model", help="base checkpoint for tasks with a base_model option (e.g. cifar10-class)")


def _add_validate_parser(sub) -> None:
    va = sub.add_parser("validate", help="check that the mini tasks separate known-good from known-bad methods")
    va.add_argument("--retrain", action="store_true", help="also run Retrain (its full recipe: minutes on CPU) and check it forgets and keeps")
    va.add_argument("--max-steps", type=int, default=None, help="cap every method's steps (smoke runs; default: 200)")
    _add_selection(va)
    va.set_defaults(out="results-validate")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="unlearn-bench", description=__doc__)
    sub = ap.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a benchmark suite (default: the embedded mini suite)")
    run.add_argument("--suite", default="mini", help="mini | mini-full | paper | FILE.yaml")
    run.add_argument("--methods", nargs="+", help="restrict to these methods (labels or names)")
    run.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    run.add_argument("--rehearse", action="store_true",
                     help="run every job of the suite end to end on tiny random stand-ins of its models and data (no weights, "
                          "minutes on a CPU): does the suite run as shipped? Records and leaderboard say rehearsal; not results. "
                          f"Default --out {DEFAULT_OUT}-rehearsal")
    _add_selection(run)

    sub_p = sub.add_parser("submit", help="validate a method file, run it over a suite and rank it")
    sub_p.add_argument("file", help="path/to/method.py[:ClassName]")
    sub_p.add_argument("--suite", default="mini")
    sub_p.add_argument("--accept-unconfined", action="store_true",
                       help="run and rank it even where method processes get no network, write or read confinement (bench/runner/sandbox.py)")
    _add_selection(sub_p)

    lb = sub.add_parser("leaderboard", help="aggregate records into the leaderboard")
    lb.add_argument("--results", default=DEFAULT_OUT)
    lb.add_argument("--format", choices=["markdown", "csv", "json"], default="markdown")
    lb.add_argument("--out", help="file to write (default: RESULTS/LEADERBOARD.md for markdown)")
    lb.add_argument("--tasks", nargs="+")
    lb.add_argument("--methods", nargs="+")
    lb.add_argument("--rule", choices=list(RULES), default=DEFAULT_RULE,
                    help="the ranking rule: safe = K reads RA/AS, integrity (retention / FID) and AS-safe (default); "
                         "integrity = without AS-safe; ra-as = RA/AS alone (leaderboard/score.py)")
    lb.add_argument("--unvouched", choices=["refuse", "accept"], default="refuse",
                    help="records this user's driver did not vouch for (e.g. results copied from another machine): "
                         "left out and listed (default), or counted")

    ev = sub.add_parser("evaluate", help="evaluate unlearned weights without unlearning: a model unlearned elsewhere, "
                                         "or the artifacts of `run --save-models` (--results)")
    ev.add_argument("weights", nargs="?", help="a diffusers UNet folder, a .safetensors file or a .pt/.pth/.bin/.ckpt state dict")
    ev.add_argument("--task", help="the task whose Original and metrics judge it (e.g. mini-shapes-concept)")
    ev.add_argument("--target", help="the target it was unlearned for (default: the task's first)")
    ev.add_argument("--label", help="its row's name on the leaderboard (lower-case words joined by hyphens)")
    ev.add_argument("--seeds", nargs="+", type=int, default=[0], help="evaluation seeds (default: 0)")
    ev.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="a task option (repeatable), e.g. model=/path/to/sd")
    ev.add_argument("--results", help="re-evaluate every saved artifact under this results directory instead")
    ev.add_argument("--out", help="results directory for the new records (default: results/, or RESULTS-reevaluated with --results)")
    ev.add_argument("--fast-paths", help="run options, as for run")

    tu = sub.add_parser("tune", help="select hyper-parameters per method with the same search budget, on held-out targets")
    tu.add_argument("--suite", default="mini", help="the suite whose methods and tasks are tuned")
    tu.add_argument("--trials", type=int, default=8, help="trials per (task, method), the same for every method")
    tu.add_argument("--validation-targets", type=int, default=3,
                    help="held-out jobs per task each trial runs on: that many held-out targets, with more seeds where a task has fewer")
    tu.add_argument("--seed", type=int, default=0, help="the searcher's seed")
    tu.add_argument("--tasks", nargs="+", help="restrict to these tasks")
    tu.add_argument("--methods", nargs="+", help="restrict to these methods (labels or names)")
    tu.add_argument("--threads", type=int, default=None, help="torch threads per trial (default: all cores)")
    tu.add_argument("--out", default="results-tune", help="records/, TUNING.md, tuned-<suite>.yaml, plots/")
    tu.add_argument("--name", help="the name the tuned suite carries (default: the tuned suite's own)")
    tu.add_argument("--report-only", action="store_true",
                    help="run no trial: rewrite TUNING.md and the tuned suite from every trial record in --out")
    tu.add_argument("--transfer", metavar="RESULTS",
                    help="with --report-only: the results of a run of the tuned suite; TUNING.md adds each chosen point's "
                         "validation score next to its score on the reported targets (the transfer gap)")

    ls = sub.add_parser("list", help="list methods, tasks, metrics or suites")
    ls.add_argument("what", choices=["methods", "tasks", "metrics", "suites"])

    pre = sub.add_parser("pretrain", help="train a base model / classifier by its recipe")
    pre.add_argument("name")
    pre.add_argument("--out", help="output directory (default: where the task loads it from)")
    pre.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    pre.add_argument("--data-root", help="data set root, for recipes that read one (e.g. cifar10)")

    fe = sub.add_parser("fetch", help="download the weights and data sets a suite needs (pinned revisions, sha256 checked) "
                                      "into the caches runs read offline")
    fe.add_argument("what", nargs="?", choices=["prompts"],
                    help="prompts: the field's prompt sets (bench/core/prompt_sets.py) into the prompt-set cache instead of weights")
    fe.add_argument("--suite", default=None, help="the suite whose tasks' files are fetched (default: paper; with prompts: every set)")
    fe.add_argument("--from", dest="from_dir", metavar="DIR",
                    help="prompts: read the sets' files from this directory (by file name), download nothing; the only way in "
                         "for sets without a licence (RGD's)")
    fe.add_argument("--sets", nargs="+", metavar="NAME", help="prompts: only these sets")
    fe.add_argument("--dry-run", action="store_true", help="print the table (what, where, size, revision / sha256, status); download nothing")
    fe.add_argument("--mirror", metavar="URL|DIR",
                    help="fetch the plain files (Inception, CIFAR-10; with prompts: the MIT prompt sets) from this base URL or "
                         "local directory, each under its file name")
    fe.add_argument("--hf-endpoint", metavar="URL",
                    help="a Hub-compatible endpoint for the Hugging Face files (default: $HF_ENDPOINT or huggingface.co)")

    _add_validate_parser(sub)
    return ap


def cmd_list(args) -> int:
    if args.what == "methods":
        from bench.runner.plugins import resolve_method
        from methods.base import METHODS

        for name in METHODS.names():
            cls = resolve_method(name)
            doc = (cls.__doc__ or sys.modules[cls.__module__].__doc__ or "").strip().splitlines()[0]
            print(f"{name:12s} {doc}")
    elif args.what == "tasks":
        from tasks.base import TASKS

        for name in TASKS.names():
            cls = TASKS.get(name)
            print(f"{name:20s} [{cls.kind}] {cls.description}")
    elif args.what == "metrics":
        from metrics.base import METRICS

        for name in METRICS.names():
            cls = METRICS.get(name)
            doc = (cls.__doc__ or sys.modules[cls.__module__].__doc__ or "").strip().splitlines()[0]
            print(f"{name:16s} {doc}")
    else:
        from bench.runner.plan import available_suites, load_suite

        for name in available_suites():
            print(f"{name:12s} {load_suite(name).description}")
    return 0


def cmd_run(args) -> int:
    from bench.runner.evaluator import count_failed, run_suite, write_leaderboard
    from bench.runner.outdir import results_lock

    t0 = time.time()
    if args.rehearse and args.out == DEFAULT_OUT:  # a rehearsal's records never land beside results
        args.out = f"{DEFAULT_OUT}-rehearsal"
    if args.dry_run:
        run_suite(args.suite, args, method_refs=args.methods)
        return 0
    with results_lock(args.out):  # writable and ours, before any job starts
        jobs = run_suite(args.suite, args, method_refs=args.methods)
        write_leaderboard(args.out)
    failed = count_failed(args.out, jobs)
    print(f"done in {time.time() - t0:.0f} s; {len(jobs) - failed} ok, {failed} failed; leaderboard: {Path(args.out) / 'LEADERBOARD.md'}", file=sys.stderr)
    return 1 if failed else 0


def cmd_submit(args) -> int:
    from bench.runner.submit import submit

    return submit(args)


def cmd_tune(args) -> int:
    from bench.runner.plan import load_suite
    from bench.runner.tune import TuneSettings, report_from_records, tune_suite

    settings = TuneSettings(trials=args.trials, validation_targets=args.validation_targets, seed=args.seed)
    suite = load_suite(args.suite)
    if args.report_only:
        report_from_records(suite, args.out, settings, name=args.name, transfer_from=args.transfer)
    else:
        tune_suite(suite, args.out, settings, tasks=args.tasks, methods=args.methods,
                   threads=args.threads or os.cpu_count() or 1, name=args.name)
    print(f"tuned suite: {Path(args.out) / f'tuned-{suite.name}.yaml'}; report: {Path(args.out) / 'TUNING.md'}", file=sys.stderr)
    return 0


def cmd_leaderboard(args) -> int:
    from bench.runner.evaluator import write_leaderboard

    if not Path(args.results).exists():
        raise BenchError(f"no results directory {args.results!r}; run `unlearn-bench run` first or pass --results")
    if args.unvouched == "accept":
        from bench.runner.voucher import ACCEPT_ENV

        os.environ[ACCEPT_ENV] = "accept"
    write_leaderboard(args.results, args.format, args.out, args.tasks, args.methods, rule=args.rule)
    return 0


def cmd_pretrain(args) -> int:
    import json

    import torch

    from bench.core.pretrain import PRETRAIN

    fn = PRETRAIN.get(args.name)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.time()
    kwargs = {"out": args.out, "device": device}
    if getattr(args, "data_root", None):
        import inspect

        if "data_root" not in inspect.signature(fn).parameters:
            raise BenchError(f"pretrain recipe {args.name!r} reads no data set; drop --data-root")
        kwargs["data_root"] = args.data_root
    summary = fn(**kwargs)
    print(json.dumps(summary, indent=2, default=str))
    print(f"pretrain {args.name}: {time.time() - t0:.0f} s", file=sys.stderr)
    return 0


def cmd_evaluate(args) -> int:
    import yaml

    from bench.runner.evaluate_models import evaluate_external, reevaluate
    from bench.runner.evaluator import write_leaderboard
    from bench.runner.outdir import results_lock
    from tasks.base import TASKS

    if args.results:
        if args.weights or args.task or args.label:
            raise BenchError("evaluate --results re-evaluates saved artifacts; it takes no weights, --task or --label")
        out = args.out or str(Path(args.results).resolve()) + "-reevaluated"
        with results_lock(out):
            records = reevaluate(args.results, out, fast_paths=args.fast_paths)
            write_leaderboard(out, echo=False)
    else:
        if not (args.weights and args.task and args.label):
            raise BenchError("evaluate needs WEIGHTS, --task and --label (or --results DIR to re-evaluate saved artifacts)")
        options = {}
        for item in args.option:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise BenchError(f"--option {item!r} must be KEY=VALUE")
            options[key] = yaml.safe_load(value)
        from bench.runner.field_types import check_fields

        task_cls = TASKS.get(args.task)
        options = check_fields(task_cls.Config, options, f"task {args.task!r} options")
        target = args.target or task_cls.make(options).targets()[0]
        out = args.out or DEFAULT_OUT
        with results_lock(out):
            records = evaluate_external(args.weights, args.task, target, args.label, args.seeds, out, options, fast_paths=args.fast_paths)
            write_leaderboard(out, echo=False)
    failed = [r for r in records if r["status"] != "ok"]
    for r in failed:
        print(f"unlearn-bench: evaluate: {r['job_id']}: {r['error']}", file=sys.stderr)
    print(f"evaluated {len(records) - len(failed)} of {len(records)}; leaderboard: {Path(out) / 'LEADERBOARD.md'}", file=sys.stderr)
    return 1 if failed else 0


def cmd_fetch(args) -> int:
    log = lambda msg: print(msg, file=sys.stderr)  # noqa: E731
    if args.what == "prompts":
        from bench.runner.fetch_prompts import fetch_prompts

        return fetch_prompts(args.sets, args.suite, args.from_dir, args.mirror, args.dry_run, log=log)
    if args.from_dir or args.sets:
        raise BenchError("--from and --sets go with `unlearn-bench fetch prompts`")
    from bench.runner.fetch import fetch_suite

    return fetch_suite(args.suite or "paper", dry_run=args.dry_run, mirror=args.mirror, hf_endpoint=args.hf_endpoint,
                       log=lambda msg: print(msg, file=sys.stderr))


def cmd_validate(args) -> int:
    from bench.runner.validate import cmd_validate as run_validate

    return run_validate(args)


COMMANDS = {"run": cmd_run, "submit": cmd_submit, "tune": cmd_tune, "leaderboard": cmd_leaderboard, "list": cmd_list,
            "pretrain": cmd_pretrain, "validate": cmd_validate, "evaluate": cmd_evaluate, "fetch": cmd_fetch}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    show_on_stderr()  # the runner's progress lines (logging) as plain lines on stderr
    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    try:
        return COMMANDS[args.command](args)
    except BenchError as exc:
        print(f"unlearn-bench: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("unlearn-bench: interrupted; finished records are kept, re-run to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
