"""`unlearn-bench tune`: hyper-parameter selection with the same budget for every method, on held-out targets.

For each (task, method) of a suite, Ray Tune (Optuna's TPE searcher, one trial at a time, seeded per method:
`sampler_seed`, so two methods with the same space do not draw the same points; its random start is a third of
the trials, so most trials are proposed by the model, not drawn at random) draws `trials` points from the method's declared space (methods/search_space.py). A trial runs the method as
an ordinary job — same records, same failure isolation, same resume — on *validation* targets that are
disjoint from the ones the suite reports (the first targets of the task's list that the suite does not
report), and scores it with the leaderboard's ranking scalar (leaderboard/score.py) against Original on
the same target: the selection rule is the ranking rule, identical for every method. Optimiser steps
are not searched: every trial runs the suite's own step count.

Resume: a trial whose job already has an `ok` record is read back, not re-run; the searcher is seeded
and runs one trial at a time, so an interrupted `tune` proposes the same points again and continues
where it stopped.

Output (in `--out`): records/ (every trial job), tuned-<suite>.yaml (the suite with the chosen
hyper-parameters per task, and in its `tuning` block what they were selected under: the rule, PROTOCOL_VERSION,
each method's code hash, the sampler seeds), TUNING.md (trials, chosen points, budget, best-so-far curves) and
plots/tune-<task>.png.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import hashlib
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bench.core.errors import ConfigError
from bench.core.record import RunRecord, parse_record
from bench.runner.job import run_job
from bench.runner.method_code import method_code_hash
from bench.runner.method_info import method_handle
from bench.runner.plan import PROTOCOL_VERSION, JobSpec, MethodEntry, Suite, TaskEntry, _entry_data
from bench.runner.provenance import git_revision
from bench.runner.records import finished_ok, iter_records, read_record, record_path
from leaderboard.score import DEFAULT_RULE, RULE, score
from methods.search_space import LogUniform
from tasks.base import TASKS


@dataclass(frozen=True)
class TuneSettings:
    trials: int = 8  # per (task, method): the same for every method
    validation_targets: int = 3  # held-out jobs per task that each trial runs on: targets, then seeds where targets run out
    seed: int = 0  # the searcher's seed (the jobs use the suite's first seed and the ones after it)

    def __post_init__(self) -> None:
        if self.trials < 1 or self.validation_targets < 1:
            raise ConfigError("tune: --trials and --validation-targets must be at least 1")

    @property
    def startup_trials(self) -> int:
        """TPE's random start: a third of the trials (at least one); Optuna's default of 10 would make a short
        search all random draws."""
        return max(1, self.trials // 3)

    def sampler_seed(self, label: str) -> int:
        """The searcher's seed for one method: the run's seed and the method's label, so methods with the same
        space search apart (recorded in the tuned suite)."""
        return (self.seed * 1_000_003 + int(hashlib.sha256(label.encode()).hexdigest()[:7], 16)) % 2**31


@dataclass
class Trial:
    number: int
    hparams: dict  # the searched values only
    score: float  # mean ranking scalar over the validation jobs (nan: a job failed)
    job_ids: list[str] = field(default_factory=list)
    per_target: dict[str, float] = field(default_factory=dict)  # validation target -> mean score over its seeds


@dataclass
class TuneResult:
    task: str
    label: str
    method: str
    space: dict  # name -> "log-uniform [a, b]" / "uniform [a, b]"
    validation_targets: list[str]
    trials: list[Trial]
    validation_seeds: list[int] = field(default_factory=lambda: [0])

    @property
    def best(self) -> Trial | None:
        scored = [t for t in self.trials if math.isfinite(t.score)]
        return max(scored, key=lambda t: (t.score, -t.number)) if scored else None


def validation_targets(task_entry: TaskEntry, n: int) -> list[str]:
    """The first n targets of the task that the suite does not report (held out for selection)."""

    task = TASKS.get(task_entry.task).make(task_entry.options)
    reported = set(task_entry.targets or task.targets())
    held_out = [t for t in task.targets() if t not in reported]
    if not held_out:
        raise ConfigError(f"tune: task {task_entry.task!r} reports all its targets; leave at least one out for validation")
    return held_out[:n]


def validation_seeds(targets: list[str], n: int, first_seed: int) -> list[int]:
    """Seeds per validation target so that a trial runs at least n jobs: one seed when the task holds out
    n targets, more where it has fewer (a style task with two held-out styles runs each with two seeds)."""
    return [first_seed + i for i in range(math.ceil(n / len(targets)))]


def _describe(dim) -> str:
    kind = "log-uniform" if isinstance(dim, LogUniform) else "uniform"
    return f"{kind} [{dim.low:.3g}, {dim.high:.3g}]"


def _tune_space(space: dict):
    from ray import tune

    return {k: (tune.loguniform if isinstance(d, LogUniform) else tune.uniform)(d.low, d.high) for k, d in space.items()}


def _first_seed(suite: Suite, te: TaskEntry) -> int:
    return int((te.seeds or suite.seeds)[0])  # the task's own seeds, else the suite's


def _seeds(suite: Suite, te: TaskEntry, settings: TuneSettings, targets: list[str]) -> list[int]:
    """The seeds each validation target runs with: from the first seed on."""
    return validation_seeds(targets, settings.validation_targets, _first_seed(suite, te))


def _job(suite: Suite, te: TaskEntry, me: MethodEntry, hparams: dict, target: str, seed: int | None = None) -> JobSpec:
    seed = _first_seed(suite, te) if seed is None else seed
    return JobSpec(f"tune:{suite.name}", te.task, te.options, target, me.method, me.label, hparams, seed,
                   suite.budget, timeout_s=suite.timeout_s, given_checkpoints=TASKS.get(te.task).make(te.options).given_checkpoints())


def _ok_record(spec: JobSpec, out_dir, threads: int | None) -> RunRecord:
    """The job's record: read back when it already finished ok (resume), else run now."""

    if finished_ok(out_dir, spec.job_id):
        return read_record(record_path(out_dir, spec.job_id))
    return parse_record(run_job(spec, out_dir, threads=threads))


def per_target_scores(scored: list[tuple[str, float]]) -> dict[str, float]:
    """(target, score) per validation job -> target -> mean over its seeds (nan when one failed)."""
    out: dict[str, list[float]] = {}
    for target, s in scored:
        out.setdefault(target, []).append(s)
    return {t: sum(v) / len(v) for t, v in out.items()}


def _trial(config: dict, *, base: dict, jobs: list[dict], originals: dict, out_dir: str, threads: int) -> dict:
    """One Ray Tune trial: the method with `config` on every validation job, scored against Original
    on the same target; the selection score is the mean over the jobs."""

    scored, ids = [], []
    for job in jobs:
        spec = JobSpec(**{**job, "hparams": {**base, **config}})
        rec = _ok_record(spec, out_dir, threads)
        ids.append(spec.job_id)
        scored.append((spec.target, score(rec.metrics, originals[spec.target]) if rec.ok else math.nan))
    mean = sum(s for _, s in scored) / len(scored)
    return {"score": mean if math.isfinite(mean) else 0.0, "valid": math.isfinite(mean), "job_ids": " ".join(ids),
            "per_target": json.dumps(per_target_scores(scored))}


def search_plan(te: TaskEntry, me: MethodEntry):
    """(suite hyper-parameters, concrete space) of one (task, method); None when it is not tuned there."""

    method = method_handle(me.method)  # a file method is asked in a method process
    kind = TASKS.get(te.task).kind
    if kind not in method.task_kinds or me.like or me.label in te.skip:  # an ablation row follows its base entry's values
        return None
    base = {**me.hparams, **(me.hparams_by_task.get(te.task) or {})}
    space = method.search_space(TASKS.get(te.task).defaults_key(), base)
    return (base, space) if space else None


def _progress_callback(bar):
    """A Ray Tune callback that ticks `bar` once per finished trial. Ray pickles the Tuner (callbacks
    included) into its experiment directory; the bar holds a stream (under pytest, an unpicklable
    capture file), so it stays out of the pickled state: a restored Tuner simply shows no ticks."""
    from ray import tune

    class Progress(tune.Callback):
        def __init__(self, bar):
            self.bar = bar

        def __getstate__(self):
            return {"bar": None}

        def _tick(self):
            if self.bar is not None:
                self.bar.update(1)

        def on_trial_complete(self, iteration, trials, trial, **info):
            self._tick()

        def on_trial_error(self, iteration, trials, trial, **info):
            self._tick()

    return Progress(bar)


def tune_one(suite: Suite, te: TaskEntry, me: MethodEntry, base: dict, space: dict, targets: list[str], originals: dict,
             out_dir: Path, settings: TuneSettings, threads: int, bar=None) -> TuneResult:
    """Search one (task, method) over `space` (from search_plan) with Ray Tune and Optuna's seeded TPE."""
    import optuna
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seeds = _seeds(suite, te, settings, targets)
    jobs = [dataclasses.asdict(_job(suite, te, me, base, t, s)) for t in targets for s in seeds]
    sampler = optuna.samplers.TPESampler(seed=settings.sampler_seed(me.label), n_startup_trials=settings.startup_trials)
    searcher = OptunaSearch(metric="score", mode="max", sampler=sampler)
    trainable = tune.with_resources(
        tune.with_parameters(_trial, base=base, jobs=jobs, originals=originals, out_dir=str(out_dir), threads=threads),
        {"cpu": threads},
    )
    tuner = tune.Tuner(
        trainable,
        param_space=_tune_space(space),
        # reuse_actors: one trial process per (task, method), so its method fork server and model cache are started once
        tune_config=tune.TuneConfig(search_alg=searcher, num_samples=settings.trials, max_concurrent_trials=1, reuse_actors=True),
        run_config=tune.RunConfig(name=f"{te.task}__{me.label}", storage_path=str((out_dir / "ray").resolve()), verbose=0,
                                  callbacks=[_progress_callback(bar)] if bar is not None else None),
    )
    grid = tuner.fit()
    trials = []
    for i, r in enumerate(grid):
        m = r.metrics or {}
        s = float(m.get("score", math.nan)) if m.get("valid") else math.nan
        trials.append(Trial(i, {k: float(r.config[k]) for k in space}, s, str(m.get("job_ids", "")).split(),
                            json.loads(m["per_target"]) if m.get("per_target") else {}))
    return TuneResult(te.task, me.label, me.method, {k: _describe(d) for k, d in space.items()}, targets, trials, seeds)


def results_from_records(suite: Suite, te: TaskEntry, me: MethodEntry, base: dict, space: dict, targets: list[str],
                         out_dir: Path, settings: TuneSettings) -> TuneResult | None:
    """One (task, method) search read back from its trial records (the records are the data): a trial
    is one point's jobs on the validation targets, numbered in the order they started (the searcher
    runs one at a time), the first `settings.trials` of them; None when no trial has a record."""

    seeds = _seeds(suite, te, settings, targets)
    recs = [r for r in iter_records(out_dir / "records") if r.suite == f"tune:{suite.name}" and r.task == te.task
            and r.target in targets and r.status in ("ok", "failed")]
    originals = {r.target: r.metrics for r in recs if r.method == "original" and r.ok}
    points: dict[str, list[RunRecord]] = {}
    for r in sorted((r for r in recs if r.label == me.label), key=lambda r: (str(r.started), r.job_id)):
        hp = r.hparams
        if any(hp.get(k) != v for k, v in base.items() if k not in space) or set(hp) - set(base) - set(space):
            continue  # another search's trial (other suite values or another space)
        points.setdefault(json.dumps({k: hp.get(k) for k in space}, sort_keys=True), []).append(r)
    trials = []
    for i, (key, jobs) in enumerate(list(points.items())[: settings.trials]):
        by_job = {(r.target, r.seed): r for r in jobs}
        scored = [(t, score(by_job[(t, s)].metrics, originals[t]) if (t, s) in by_job and by_job[(t, s)].ok and t in originals
                   else math.nan) for t in targets for s in seeds]
        mean = sum(v for _, v in scored) / len(scored)
        trials.append(Trial(i, {k: float(v) for k, v in json.loads(key).items()}, mean, [r.job_id for r in jobs],
                            per_target_scores(scored)))
    if not trials:
        return None
    return TuneResult(te.task, me.label, me.method, {k: _describe(d) for k, d in space.items()}, targets, trials, seeds)


def report_from_records(suite: Suite, out_dir, settings: TuneSettings, name: str | None = None,
                        transfer_from=None) -> list[TuneResult]:
    """Rewrite TUNING.md and the tuned suite from every trial record in `out_dir` (no new trials): what
    several partial `tune` runs (--tasks/--methods) into one directory searched, as one report."""
    out_dir = Path(out_dir)
    results = []
    for te in suite.tasks:
        for me in suite.methods:
            plan = search_plan(te, me)
            if plan is None:
                continue
            res = results_from_records(suite, te, me, *plan, validation_targets(te, settings.validation_targets), out_dir, settings)
            if res is not None:
                results.append(res)
    if not results:
        raise ConfigError(f"tune --report-only: no trial records of suite {suite.name!r} in {out_dir / 'records'}")
    write_outputs(suite, results, settings, out_dir, name, reported_scores(transfer_from) if transfer_from else None)
    return results


def run_originals(suite: Suite, te: TaskEntry, targets: list[str], out_dir: Path, threads: int) -> dict:
    """Original's metrics per validation target (the score's reference), run once and resumed."""
    out = {}
    for t in targets:
        rec = _ok_record(_job(suite, te, MethodEntry("original", "original"), {}, t), out_dir, threads)
        if not rec.ok:
            raise ConfigError(f"tune: the Original job on {te.task}/{t} failed: {rec.error}")
        out[t] = rec.metrics
    return out


def tune_suite(suite: Suite, out_dir, settings: TuneSettings, tasks=None, methods=None, threads: int = 1,
               name: str | None = None) -> list[TuneResult]:
    """Tune every (task, method) of the suite (optionally restricted); write the report and tuned suite."""
    import os

    import ray

    os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # no TensorBoard/CSV files per trial: records are the data
    out_dir = Path(out_dir).resolve()  # absolute: Ray Tune runs each trial in its own working directory
    (out_dir / "records").mkdir(parents=True, exist_ok=True)
    task_entries = [te for te in suite.tasks if not tasks or te.task in tasks]
    method_entries = [me for me in suite.methods if not methods or me.label in methods or me.method in methods]
    if not task_entries or not method_entries:
        raise ConfigError("tune: the selection matches no task or method")
    if not ray.is_initialized():
        ray.init(num_cpus=max(threads, 1), include_dashboard=False, log_to_driver=False, configure_logging=False)
    from tqdm import tqdm

    plans = {(te.task, me.label): search_plan(te, me) for te in task_entries for me in method_entries}
    total = sum(settings.trials for p in plans.values() if p)
    results = []
    with tqdm(total=total, desc="tune trials", unit="trial", file=sys.stderr) as bar:
        for te in task_entries:
            targets = validation_targets(te, settings.validation_targets)
            bar.write(f"tune {te.task}: validation targets {', '.join(targets)} (reported targets are never seen)")
            originals = run_originals(suite, te, targets, out_dir, threads)
            for me in method_entries:
                plan = plans[(te.task, me.label)]
                if plan is None:
                    continue
                bar.set_postfix_str(f"{te.task}/{me.label}")
                res = tune_one(suite, te, me, *plan, targets, originals, out_dir, settings, threads, bar)
                best = res.best
                bar.write(f"  {me.label}: best score {best.score:.3f} at {best.hparams}" if best else f"  {me.label}: every trial failed")
                results.append(res)
    write_outputs(suite, results, settings, out_dir, name)
    return results


MIXED_CODE = "mixed"  # a method whose chosen points ran on different code (never any job's hash: always stale)


def chosen_method_codes(results: list[TuneResult], out_dir) -> dict[str, str]:
    """label -> the method code hash its chosen points' trial jobs ran with (read from their records: the code the
    selection saw, not today's), MIXED_CODE when they differ between its jobs or tasks, today's hash when no record
    says (trials run before records carried it, or no out_dir)."""
    codes: dict[str, set] = {}
    for r in results:
        best = r.best
        for job_id in (best.job_ids if best and out_dir is not None else []):
            path = record_path(Path(out_dir), job_id)
            if path.exists():
                codes.setdefault(r.label, set()).add(read_record(path).method_code)
    out = {}
    for r in results:
        seen = codes.get(r.label, set()) - {None}
        out[r.label] = (next(iter(seen)) if len(seen) == 1 else MIXED_CODE) if seen else method_code_hash(r.method)
    return out


def tuned_suite(suite: Suite, results: list[TuneResult], settings: TuneSettings, name: str | None = None,
                method_codes: dict[str, str] | None = None) -> dict:
    """The suite as YAML data with each tuned method's chosen values in `hparams_by_task`, those tasks
    listed under the entry's `tuned`, and the budget under `tuning` (the leaderboard shows both)."""

    chosen = {(r.task, r.label): r.best.hparams for r in results if r.best}
    tasks = {te.task: {k: v for k, v in (("targets", list(te.targets) if te.targets else None), ("options", te.options),
                                         ("seeds", list(te.seeds) if te.seeds else None),
                                         ("skip", list(te.skip))) if v}
             for te in suite.tasks}
    methods = []
    for me in suite.methods:
        by_task = {t: dict(v or {}) for t, v in me.hparams_by_task.items()}
        tuned = list(me.tuned)
        for (task, label), values in chosen.items():
            if label == me.label:
                by_task[task] = {**by_task.get(task, {}), **{k: float(f"{v:.4g}") for k, v in values.items()}}
                tuned += [task] if task not in tuned else []
        entry = _entry_data(dataclasses.replace(me, hparams_by_task=by_task, tuned=tuple(tuned)))
        methods.append(entry if len(entry) > 1 else me.method)
    labels = sorted({r.label for r in results})
    method_of = {r.label: r.method for r in results}
    tuning = {"trials": settings.trials, "validation_targets": settings.validation_targets, "searcher": "optuna-tpe",
              "seed": settings.seed, "startup_trials": settings.startup_trials,
              "sampler_seeds": {label: settings.sampler_seed(label) for label in labels},
              "tuned_from": suite.name,
              # what the points were selected under: a row whose record differs is marked stale by the leaderboard
              "rule": DEFAULT_RULE, "protocol_version": PROTOCOL_VERSION,
              "method_code": {label: (method_codes or {}).get(label) or method_code_hash(method_of[label]) for label in labels}}
    return {"name": name or suite.name, "description": suite.description, "seeds": list(suite.seeds), "tasks": tasks,
            "hparams_source": suite.hparams_source, "tuning": tuning, "methods": methods,
            **({"budget": suite.budget} if suite.budget else {}), **({"timeout_s": suite.timeout_s} if suite.timeout_s else {})}


def reported_scores(results_dir) -> dict[tuple[str, str], tuple[float, int]]:
    """(task, row label) -> (mean score, jobs) on the reported targets, from the records of a run of the
    tuned suite (the leaderboard's own aggregation): the other side of the transfer gap."""
    from leaderboard.aggregate import aggregate

    out = {}
    for table in aggregate(list(iter_records(Path(results_dir) / "records"))):
        if table.rows.empty or "score mean" not in table.rows:
            continue
        for _, row in table.rows.iterrows():
            if not row["reference"] and math.isfinite(row["score mean"]):
                out[(table.task, row["row"])] = (float(row["score mean"]), int(row["n"]))
    return out


def _fmt(x: float) -> str:
    return "–" if not math.isfinite(x) else f"{x:.2f}"


FLAT_TOLERANCE = 0.01  # a best-so-far curve that gains less than this over its last third of trials has flattened


def best_so_far(trials: list[Trial]) -> list[float]:
    """The best validation score after each trial (failed trials count as no gain; nan before the first success)."""
    out, best = [], math.nan
    for t in trials:
        if math.isfinite(t.score) and not (t.score <= best):
            best = t.score
        out.append(best)
    return out


def flattened(curve: list[float]) -> tuple[bool, float]:
    """(whether the curve gained less than FLAT_TOLERANCE over its last third, the gain there)."""
    if not curve:
        return False, math.nan
    k = len(curve) - max(1, len(curve) // 3) - 1  # the last trial before the final third
    before = curve[k] if k >= 0 and math.isfinite(curve[k]) else 0.0
    gain = (curve[-1] if math.isfinite(curve[-1]) else 0.0) - before
    return gain < FLAT_TOLERANCE, gain


def report_markdown(suite: Suite, results: list[TuneResult], settings: TuneSettings, transfer: dict | None = None) -> str:
    lines = [f"# Tuning report: suite `{suite.name}`", "",
             f"Budget, the same for every method: {settings.trials} trials per (task, method), each at least "
             f"{settings.validation_targets} jobs on held-out validation targets (more seeds where a task holds out "
             "fewer targets) at the suite's own optimiser steps; searcher: Optuna TPE, one trial at a time, its first "
             f"{settings.startup_trials} trials random, the rest proposed by TPE, with a sampler seed per method "
             f"(from --seed {settings.seed} and the method's label: "
             + ", ".join(f"{label} {settings.sampler_seed(label)}" for label in dict.fromkeys(r.label for r in results))
             + f"). Selected under protocol {PROTOCOL_VERSION}, rule `{DEFAULT_RULE}`: the mean over the validation jobs of "
             f"the leaderboard's ranking scalar, against Original on the same target: {RULE}", ""]
    for task in dict.fromkeys(r.task for r in results):
        rows = [r for r in results if r.task == task]
        targets = rows[0].validation_targets
        lines += [f"## {task}", "", f"Validation targets (never reported): {', '.join(targets)}, seeds "
                  f"{', '.join(map(str, rows[0].validation_seeds))}. Plot: [plots/tune-{task}.png](plots/tune-{task}.png)", "",
                  "| method | space | chosen | score | " + " | ".join(f"`{t}`" for t in targets) + " | trials (score per trial) |",
                  "|---|---|---|---:|" + "---:|" * len(targets) + "---|"]
        for r in rows:
            best = r.best
            chosen = ", ".join(f"{k} {v:.3g}" for k, v in best.hparams.items()) if best else "–"
            per = " ".join(_fmt(t.score) for t in r.trials)
            space = "; ".join(f"{k} {d}" for k, d in r.space.items())
            by_target = " | ".join(_fmt(best.per_target.get(t, math.nan)) if best else "–" for t in targets)
            lines.append(f"| {r.label} | {space} | {chosen} | {best.score:.3f} | {by_target} | {per} |" if best
                         else f"| {r.label} | {space} | – | – | {by_target} | {per} |")
        lines += ["", f"Best-so-far validation score after each trial (the plot's lines); *flat* = it gained less than "
                  f"{FLAT_TOLERANCE} over the last third of the trials:", "",
                  "| method | " + " | ".join(str(i + 1) for i in range(settings.trials)) + " | last third |",
                  "|---|" + "---:|" * settings.trials + "---|"]
        for r in rows:
            curve = best_so_far(r.trials)
            flat, gain = flattened(curve)
            cells = [_fmt(x) for x in curve] + [""] * (settings.trials - len(curve))
            if not curve or len(curve) < settings.trials:  # a search cut off (resumable): no verdict on its tail yet
                verdict = f"incomplete ({len(curve)} of {settings.trials} trials)"
            else:
                verdict = "flat" if flat else f"still rising (+{gain:.2f})"
            lines.append(f"| {r.label} | " + " | ".join(cells) + f" | {verdict} |")
        lines += ["", "Per trial and validation target (mean over its seeds):", "",
                  "| method | trial | " + " | ".join(f"`{t}`" for t in targets) + " |", "|---|---:|" + "---:|" * len(targets)]
        for r in rows:
            for t in r.trials:
                lines.append(f"| {r.label} | {t.number + 1} | " + " | ".join(_fmt(t.per_target.get(x, math.nan)) for x in targets) + " |")
        lines.append("")
    if transfer is not None:
        lines += ["## Transfer: the chosen point on the validation targets vs on the reported ones", "",
                  "Reported = the leaderboard's mean score of the row in a run of the tuned suite (its records); gap = "
                  "reported − validation. A large negative gap: the validation targets chose a point that does not carry over.", "",
                  "| task | method | validation score | reported score (n) | gap |", "|---|---|---:|---:|---:|"]
        for r in results:
            best = r.best
            rep = transfer.get((r.task, r.label))
            val = best.score if best else math.nan
            rep_s = f"{rep[0]:.3f} ({rep[1]})" if rep else "not run"
            gap = f"{rep[0] - val:+.3f}" if rep and best else "–"
            lines.append(f"| {r.task} | {r.label} | {f'{val:.3f}' if best else '–'} | {rep_s} | {gap} |")
        lines.append("")
    return "\n".join(lines)


def plot_trials(results: list[TuneResult], out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (out_dir / "plots").mkdir(parents=True, exist_ok=True)
    for task in dict.fromkeys(r.task for r in results):
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for r in (r for r in results if r.task == task):
            xs = [t.number + 1 for t in r.trials]
            ys = [t.score if math.isfinite(t.score) else float("nan") for t in r.trials]
            line, = ax.step(xs, best_so_far(r.trials), where="post", label=r.label.replace("$", r"\$"))
            ax.plot(xs, ys, "o", ms=3, alpha=0.5, color=line.get_color())  # each trial's own score
        ax.set(xlabel="trial", ylabel="best-so-far score (validation)", title=f"tune: {task} (lines: best so far; dots: each trial)".replace("$", r"\$"),
               ylim=(-0.02, 1.02))
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out_dir / "plots" / f"tune-{task}.png", dpi=100)
        plt.close(fig)


def write_outputs(suite: Suite, results: list[TuneResult], settings: TuneSettings, out_dir: Path, name: str | None = None,
                  transfer: dict | None = None) -> None:
    stamp = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    header = (f"# Tuned by `unlearn-bench tune --suite {suite.name} --trials {settings.trials} --validation-targets "
              f"{settings.validation_targets} --seed {settings.seed}{f' --name {name}' if name else ''}` on {stamp} "
              f"(git {git_revision()}); report: TUNING.md\n")
    data = tuned_suite(suite, results, settings, name, chosen_method_codes(results, out_dir))
    (out_dir / f"tuned-{suite.name}.yaml").write_text(header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    (out_dir / "TUNING.md").write_text(report_markdown(suite, results, settings, transfer) + "\n")
    plot_trials(results, out_dir)
