"""Suites (YAML run specs, kept apart from code) -> a plan of (task, target, method, seed) jobs."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Iterable

import yaml

from bench.core.errors import ConfigError
from bench.core.hashing import json_digest
from bench.runner.field_types import check_fields
from bench.runner.method_info import method_handle
from bench.runner.plugins import builtin_names, check_name_format, resolve_method
from bench.runner.timeout import default_timeout
from tasks.base import TASKS

SUITE_DIR = Path(__file__).parent.parent / "suites"  # run specs live apart from the code: bench/suites/
PROTOCOL_VERSION = "4"  # bump when a definition in PROTOCOL.md changes meaning (2: issue 11 method fidelity; 3: issues 20-21, integrity floors, the second fidelity pass; 4: issue 38, AS-safe and the "safe" rule)


@dataclass(frozen=True)
class MethodEntry:
    method: str  # registry name, or FILE.py[:Name] for submitted methods
    label: str  # leaderboard row name
    hparams: dict = field(default_factory=dict)
    hparams_by_task: dict = field(default_factory=dict)
    tuned: tuple[str, ...] = ()  # tasks whose hparams_by_task values `unlearn-bench tune` selected
    like: str | None = None  # an ablation row: the hyper-parameters of the entry with this label, then its own
    own: tuple[str, ...] = ()  # with `like`: the hyper-parameters this entry sets itself


@dataclass(frozen=True)
class SequenceEntry:
    """A task's sequential unlearning (issue 23): each order's targets erased one after another by every row."""

    orders: tuple[tuple[str, ...], ...]  # each: ≥ 2 distinct targets, erased in this order
    seeds: tuple[int, ...] | None = None  # None: the task's seeds
    options: dict = field(default_factory=dict)  # on top of the task's options, for the sequence jobs only


@dataclass(frozen=True)
class TaskEntry:
    task: str
    targets: tuple[str, ...] | None = None  # None: all targets of the task
    options: dict = field(default_factory=dict)
    seeds: tuple[int, ...] | None = None  # None: the suite's seeds (a task with few targets replicates over seeds)
    skip: tuple[str, ...] = ()  # labels of the suite's rows this task does not run (methods named on the command line still run)
    sequences: SequenceEntry | None = None


@dataclass
class Suite:
    name: str
    tasks: list[TaskEntry]
    methods: list[MethodEntry]
    seeds: list[int]
    budget: dict = field(default_factory=dict)
    description: str = ""
    timeout_s: float | None = None  # per-job wall-clock limit; None: each task's default (bench/runner/timeout.py)
    hparams_source: str = "given"  # where untuned hyper-parameters come from: "reference" (the papers') or "given"
    tuning: dict = field(default_factory=dict)  # the tuning budget behind the `tuned` entries (trials, held-out targets)
    rehearsal: bool = False  # `run --rehearse`: tiny stand-in models, a few steps and images (bench/runner/rehearsal.py)

    def hparams_source_for(self, entry: MethodEntry, task: str) -> str:
        """What a record says about its hyper-parameters: tuned (with the budget), reference or given."""
        if entry.like:
            base = next(m for m in self.methods if m.label == entry.like)
            return f"{self.hparams_source_for(base, task)} values of {entry.like}, then {', '.join(sorted(entry.own))}"
        if task in entry.tuned:
            t = self.tuning
            return f"tuned ({t.get('trials', '?')} trials x {t.get('validation_targets', '?')} held-out jobs)"
        return self.hparams_source

    def tuned_under_for(self, entry: MethodEntry, task: str) -> dict:
        """What a tuned entry's values on `task` were selected under (the `tuning` block's rule, protocol version
        and the method's code hash then); {} for values that were not tuned. An ablation row inherits its base's."""
        if entry.like:
            return self.tuned_under_for(next(m for m in self.methods if m.label == entry.like), task)
        if task not in entry.tuned:
            return {}
        t = self.tuning
        return {"rule": t.get("rule"), "protocol_version": t.get("protocol_version"),
                "method_code": (t.get("method_code") or {}).get(entry.label)}


@dataclass(frozen=True)
class JobSpec:
    suite: str
    task: str
    task_options: dict
    target: str
    method: str
    label: str
    hparams: dict  # overrides on top of the method's per-kind defaults; resolved values go in the record
    seed: int
    budget: dict
    timeout_s: float | None = None  # wall-clock limit of the job (not part of the setting: a limit changes no result)
    hparams_source: str = "given"  # tuned (budget) / reference / given: a label, not a setting (the values are)
    given_checkpoints: dict = field(default_factory=dict)  # option -> digest of a user-given checkpoint (Task.given_checkpoints)
    # sequential unlearning: the full order of targets the job's chain erases, `target` among them; () an ordinary job.
    # Step k starts from step k-1's unlearned weights (bench/runner/chains.py); every step is judged against Original.
    sequence: tuple[str, ...] = ()
    rehearsal: bool = False  # a rehearsal's job (bench/runner/rehearsal.py): stand-in models, never a result
    # tuned hyper-parameters: what they were selected under (rule, protocol_version, method_code); {} when not tuned.
    # A label like hparams_source, not a setting: the leaderboard compares it with the record's own (stale marks)
    tuned_under: dict = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "sequence", tuple(str(t) for t in self.sequence))  # a record's list reads back as a tuple

    @property
    def step(self) -> int | None:
        """0-based position of the target in its sequence; None for an ordinary job."""
        return self.sequence.index(self.target) if self.sequence else None

    @property
    def erased(self) -> tuple[str, ...]:
        """The targets erased before this one in its chain (the task leaves them out of D_r and the keep sets)."""
        return self.sequence[: self.step] if self.sequence else ()

    def previous(self) -> "JobSpec | None":
        """The chain's step before this one (whose weights this one starts from); None for ordinary jobs and first steps."""
        return replace(self, target=self.sequence[self.step - 1]) if self.step else None

    def setting(self) -> dict[str, Any]:
        """What must match for two records to be averaged together (everything but target and seed)."""
        return {
            "protocol": PROTOCOL_VERSION,
            "task": self.task,
            "task_options": self.task_options,
            "method": self.method,
            "label": self.label,
            "hparams": self.hparams,
            "budget": self.budget,
            **({"checkpoints": self.given_checkpoints} if self.given_checkpoints else {}),  # absent: the hashes of shipped defaults stay as they were
            **({"sequence_step": self.step} if self.sequence else {}),  # absent: ordinary jobs keep their hashes
            **({"rehearsal": True} if self.rehearsal else {}),  # a rehearsal's records never share a row with results
        }

    @property
    def setting_hash(self) -> str:
        return json_digest(self.setting(), 16, default=str)

    @property
    def job_id(self) -> str:
        safe = lambda s: "".join(c if c.isalnum() or c in "-_." else "_" for c in str(s))  # noqa: E731
        chain = f"__q{safe('-'.join(self.sequence[: self.step + 1]))}" if self.sequence else ""  # the chain's prefix up to here
        return f"{safe(self.task)}__{safe(self.label)}__t{safe(self.target)}__s{self.seed}{chain}__{self.setting_hash[:10]}"

    def to_dict(self) -> dict:
        return asdict(self)


def available_suites() -> list[str]:
    return sorted(p.stem for p in SUITE_DIR.glob("*.yaml"))


def load_suite(name_or_path: str) -> Suite:
    path = Path(name_or_path)
    if not (path.suffix in (".yaml", ".yml") and path.exists()):
        path = SUITE_DIR / f"{name_or_path}.yaml"
        if not path.exists():
            raise ConfigError(f"unknown suite {name_or_path!r}; built-in suites: {', '.join(available_suites())}, or a path to a .yaml file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"malformed suite YAML {path}{where}: {what}") from None
    return parse_suite(raw, default_name=path.stem, source=str(path))


def _parse_sequences(raw: Any, where: str) -> SequenceEntry | None:
    """A task's `sequences: {orders: [[a, b, c], ...], seeds?: [...], options?: {...}}`."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"orders", "seeds", "options"} or "orders" not in raw:
        raise ConfigError(f"{where}: 'sequences' takes 'orders' (a list of target lists) and optional 'seeds' and 'options'")
    orders = raw["orders"]
    if not isinstance(orders, list) or not orders or not all(isinstance(o, list) for o in orders):
        raise ConfigError(f"{where}: sequences 'orders' must be a non-empty list of target lists, e.g. [[3, 5, 8]]")
    for o in orders:
        names = [str(t) for t in o]
        if len(names) < 2 or len(set(names)) != len(names):
            raise ConfigError(f"{where}: sequence order {o!r} needs two or more distinct targets")
    seeds = raw.get("seeds")
    if seeds is not None and (not isinstance(seeds, list) or not seeds or not all(isinstance(x, int) and not isinstance(x, bool) for x in seeds)):
        raise ConfigError(f"{where}: sequences 'seeds' must be a non-empty list of integers")
    options = raw.get("options") or {}
    if not isinstance(options, dict):
        raise ConfigError(f"{where}: sequences 'options' must be a mapping option -> value, not {options!r}")
    return SequenceEntry(tuple(tuple(str(t) for t in o) for o in orders), tuple(seeds) if seeds else None, dict(options))


def _parse_tasks(tasks_raw: Any, source: str) -> list[TaskEntry]:
    """The suite's `tasks`: a list of names, or a mapping name -> {targets, options, seeds, skip, sequences}."""
    tasks = []
    if isinstance(tasks_raw, list):
        tasks_raw = {t: {} for t in tasks_raw}
    if not isinstance(tasks_raw, dict):
        raise ConfigError(f"suite {source}: 'tasks' must be a list of names or a mapping name -> {{targets, options, seeds, skip}}")
    for name, spec in tasks_raw.items():
        spec = spec or {}
        if not isinstance(spec, dict) or set(spec) - {"targets", "options", "seeds", "skip", "sequences"}:
            raise ConfigError(f"suite {source}: task {name!r} takes only 'targets', 'options', 'seeds', 'skip' and 'sequences'")
        targets = spec.get("targets")
        if targets is not None and not isinstance(targets, list):
            raise ConfigError(f"suite {source}: task {name!r} targets must be a list")
        if targets == []:
            raise ConfigError(f"suite {source}: task {name!r} has an empty 'targets' list; omit 'targets' for all of the task's targets")
        options = spec.get("options") or {}
        if not isinstance(options, dict):
            raise ConfigError(f"suite {source}: task {name!r} options must be a mapping option -> value, not {options!r}")
        seeds = spec.get("seeds")
        if seeds is not None and (not isinstance(seeds, list) or not seeds or not all(isinstance(x, int) for x in seeds)):
            raise ConfigError(f"suite {source}: task {name!r} seeds must be a non-empty list of integers")
        skip = spec.get("skip") or []
        if not isinstance(skip, list) or not all(isinstance(x, str) for x in skip):
            raise ConfigError(f"suite {source}: task {name!r} skip must be a list of method labels, not {skip!r}")
        sequences = _parse_sequences(spec.get("sequences"), f"suite {source}: task {name!r}")
        tasks.append(TaskEntry(str(name), tuple(str(t) for t in targets) if targets else None, dict(options),
                               tuple(seeds) if seeds else None, tuple(skip), sequences))
    return tasks


def _parse_run_settings(raw: dict, source: str) -> tuple[list[int], dict, float | None]:
    """The suite's seeds, budget and per-job timeout."""
    seeds = raw.get("seeds", [0])
    if not isinstance(seeds, list) or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ConfigError(f"suite {source}: 'seeds' must be a list of integers")
    if not seeds:
        raise ConfigError(f"suite {source}: 'seeds' is empty; give at least one seed (e.g. seeds: [0])")
    budget = raw.get("budget") or {}
    if not isinstance(budget, dict) or set(budget) - {"max_steps"}:
        raise ConfigError(f"suite {source}: 'budget' takes only 'max_steps'")
    max_steps = budget.get("max_steps")
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
        raise ConfigError(f"suite {source}: budget max_steps must be a positive integer or null, not {max_steps!r}")
    timeout_s = raw.get("timeout_s")
    if timeout_s is not None:
        timeout_s = check_timeout(timeout_s, f"suite {source}: timeout_s")
    return seeds, budget, timeout_s


def parse_suite(raw: Any, default_name: str = "custom", source: str = "<suite>") -> Suite:
    if not isinstance(raw, dict):
        raise ConfigError(f"suite {source} must be a mapping with 'tasks' and 'methods'")
    unknown = set(raw) - {"name", "description", "tasks", "methods", "methods_from", "seeds", "budget", "timeout_s",
                          "hparams_source", "tuning"}
    if unknown:
        raise ConfigError(f"suite {source}: unknown key(s) {', '.join(sorted(unknown))}")
    if raw.get("methods_from"):  # another suite's method list (and how it was selected), then this suite's own
        base = load_suite(str(raw["methods_from"]))
        own = raw.get("methods") or []
        if not isinstance(own, list):
            raise ConfigError(f"suite {source}: 'methods' must be a list (e.g. [finetune, rgd]), not {own!r}")
        raw = {"hparams_source": base.hparams_source, "tuning": base.tuning, **raw,
               "methods": [_entry_data(m) for m in base.methods] + own}
    for key in ("tasks", "methods"):
        if not raw.get(key):
            raise ConfigError(f"suite {source} needs a non-empty '{key}'")
    tasks = _parse_tasks(raw["tasks"], source)
    if not isinstance(raw["methods"], list):
        raise ConfigError(f"suite {source}: 'methods' must be a list (e.g. [finetune, rgd]), not {raw['methods']!r}")
    methods = [parse_method_entry(m, source) for m in raw["methods"]]
    labels = [m.label for m in methods]
    if len(set(labels)) != len(labels):
        raise ConfigError(f"suite {source}: duplicate method labels {sorted({l for l in labels if labels.count(l) > 1})}; give each a 'label'")
    methods = resolve_like(methods, source)
    for te in tasks:
        unknown_rows = sorted(set(te.skip) - set(labels))
        if unknown_rows:
            raise ConfigError(f"suite {source}: task {te.task!r} skips {', '.join(map(repr, unknown_rows))}, not a method label of the suite "
                              f"({', '.join(labels)})")
    seeds, budget, timeout_s = _parse_run_settings(raw, source)
    source_kind = raw.get("hparams_source", "given")
    if source_kind not in ("given", "reference"):
        raise ConfigError(f"suite {source}: hparams_source must be 'given' or 'reference' (tuned values are marked per method by 'tuned')")
    tuning = raw.get("tuning") or {}
    if not isinstance(tuning, dict):
        raise ConfigError(f"suite {source}: 'tuning' must be a mapping (trials, validation_targets, ...)")
    if any(m.tuned for m in methods) and not tuning:
        raise ConfigError(f"suite {source}: methods marked 'tuned' need the suite's 'tuning' budget")
    return Suite(str(raw.get("name", default_name)), tasks, methods, seeds, budget, str(raw.get("description", "")), timeout_s,
                 source_kind, dict(tuning))


def _entry_data(m: MethodEntry) -> dict:
    """A MethodEntry as suite YAML data (what parse_method_entry reads back)."""
    if m.like:  # written as it was given: it follows its base entry
        return {"method": m.method, "label": m.label, "like": m.like, "hparams": {k: m.hparams[k] for k in m.own}}
    entry: dict = {"method": m.method}
    if m.label != m.method:
        entry["label"] = m.label
    if m.hparams:
        entry["hparams"] = dict(m.hparams)
    if m.hparams_by_task:
        entry["hparams_by_task"] = {t: dict(v or {}) for t, v in m.hparams_by_task.items()}
    if m.tuned:
        entry["tuned"] = list(m.tuned)
    return entry


def resolve_like(methods: list[MethodEntry], source: str) -> list[MethodEntry]:
    """Entries with `like: LABEL` take that earlier entry's hyper-parameters (per task too), then their own on top:
    an ablation row that follows its method's tuned values when they are re-tuned."""
    out: list[MethodEntry] = []
    for m in methods:
        if m.like is not None:
            base = next((b for b in out if b.label == m.like), None)
            if base is None or base.method != m.method or base.like:
                raise ConfigError(f"suite {source}: method {m.label!r} is like: {m.like!r}, which must be an earlier {m.method!r} entry "
                                  "without a 'like' of its own")
            if m.hparams_by_task or m.tuned:
                raise ConfigError(f"suite {source}: method {m.label!r} has 'like': it takes {m.like!r}'s per-task values, "
                                  "so it sets only 'hparams'")
            by_task = {t: {**(v or {}), **m.hparams} for t, v in base.hparams_by_task.items()}
            m = MethodEntry(m.method, m.label, {**base.hparams, **m.hparams}, by_task, (), m.like, tuple(sorted(m.hparams)))
        out.append(m)
    return out


def check_timeout(value: Any, who: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{who} must be a positive number of seconds, not {value!r}")
    return float(value)


def parse_method_entry(m: Any, source: str = "<suite>") -> MethodEntry:
    if isinstance(m, str):
        return MethodEntry(m, m)
    if not isinstance(m, dict) or "method" not in m or set(m) - {"method", "label", "hparams", "hparams_by_task", "tuned", "like"}:
        raise ConfigError(f"suite {source}: method entry {m!r} must be a name or {{method, label?, hparams?, hparams_by_task?, tuned?, like?}}")
    hparams, by_task = m.get("hparams") or {}, m.get("hparams_by_task") or {}
    if not isinstance(hparams, dict):
        raise ConfigError(f"suite {source}: method {m['method']!r} hparams must be a mapping name -> value, not {hparams!r}")
    if not isinstance(by_task, dict) or not all(isinstance(v, dict) or v is None for v in by_task.values()):
        raise ConfigError(f"suite {source}: method {m['method']!r} hparams_by_task must map task -> {{name: value}}, not {by_task!r}")
    tuned = m.get("tuned") or []
    if not isinstance(tuned, list) or not all(t in by_task for t in tuned):
        raise ConfigError(f"suite {source}: method {m['method']!r} 'tuned' must list tasks that have hparams_by_task values")
    like = m.get("like")
    if like is not None and (not isinstance(like, str) or "label" not in m):
        raise ConfigError(f"suite {source}: method {m['method']!r}: 'like' names another entry's label, and the row needs its own 'label'")
    return MethodEntry(str(m["method"]), str(m.get("label", m["method"])), dict(hparams), dict(by_task), tuple(map(str, tuned)), like)


def _row_jobs(row: JobSpec, targets: list[str], seeds: list[int], is_original: bool) -> list[JobSpec]:
    """One row's jobs: each target × seed (`row` a template), or with `row.sequence` each seed × its steps in order.
    Original runs the first seed only: no training and fixed evaluation noise, every seed would repeat it."""
    seeds = seeds[:1] if is_original else seeds
    if row.sequence:
        return [replace(row, target=t, seed=int(s)) for s in seeds for t in row.sequence]
    return [replace(row, target=t, seed=int(s)) for t in targets for s in seeds]


def _sequence_plan(task_cls, te: TaskEntry) -> tuple[dict, dict, tuple] | None:
    """(options, given checkpoints, orders) of a task's sequence jobs, validated; None when it has none."""
    if te.sequences is None:
        return None
    if not getattr(task_cls, "supports_sequences", False):
        raise ConfigError(f"task {te.task!r} does not support sequences (its build() takes no erased targets)")
    options = check_fields(task_cls.Config, {**te.options, **te.sequences.options}, f"task {te.task!r} sequences options")
    task = task_cls.make(options)
    task.check_metrics()
    if getattr(task.config, "neighbours", False):
        raise ConfigError(f"task {te.task!r}: sequences run without the neighbours option (a neighbour may be an earlier target); "
                          "set it false under sequences: options")
    for order in te.sequences.orders:
        for t in order:
            task.validate_target(t)
    return options, task.given_checkpoints(), te.sequences.orders


def plan_jobs(
    suite: Suite,
    tasks: Iterable[str] | None = None,
    methods: Iterable[str] | None = None,
    targets: Iterable[str] | None = None,
    seeds: Iterable[int] | None = None,
    timeout_s: float | None = None,
) -> list[JobSpec]:
    """Expand a suite into jobs, validating every name against the registries (before any work)."""

    tasks = list(tasks) if tasks else None
    methods = list(methods) if methods else None
    task_entries = [t for t in suite.tasks if tasks is None or t.task in tasks]
    if tasks:
        known = {t.task for t in suite.tasks}
        extra = [t for t in tasks if t not in known]
        for name in extra:
            TASKS.get(name)  # unknown task -> clear error
        task_entries += [TaskEntry(t) for t in extra]
    method_entries = [m for m in suite.methods if methods is None or m.label in methods or m.method in methods]
    if methods:
        known = {m.label for m in suite.methods} | {m.method for m in suite.methods}
        method_entries += [MethodEntry(m, m) for m in methods if m not in known]
    jobs = []
    handles: dict = {}
    for te in task_entries:
        task_cls = TASKS.get(te.task)
        te = replace(te, options=check_fields(task_cls.Config, te.options, f"task {te.task!r} options"))
        task = task_cls.make(te.options)
        task.check_metrics()  # a metric the task cannot serve fails here, before any unlearning runs
        task_targets = [str(t) for t in targets] if targets else list(te.targets or task.targets())
        for t in task_targets:
            task.validate_target(t)
        given = task.given_checkpoints()  # the user's own weights: their content is part of the setting
        chains = None if targets else _sequence_plan(task_cls, te)  # --targets selects single targets: no sequence is run
        for me in method_entries:
            # a file method is described by a method process (its code never runs here), its name checked free there
            method = handles.setdefault(me.method, method_handle(me.method))
            label = method.name if me.label == me.method and method.is_file else me.label
            check_name_format(label, "method label")
            if label in builtin_names() and (method.is_file or resolve_method(label) is not resolve_method(me.method)):
                raise ConfigError(f"label {label!r} is reserved for the built-in method {label!r}; give {me.method!r} another label")
            if task_cls.kind not in method.task_kinds:
                continue  # e.g. Retrain on concept tasks
            if me.label in te.skip and not (methods and (me.label in methods or me.method in methods)):
                continue  # the suite leaves this row out of this task (mini: to fit its time budget)
            hparams = {**me.hparams, **(me.hparams_by_task.get(te.task) or {})}
            hparams = method.check_hparams(task_cls.defaults_key(), hparams, f"method {label!r} hyper-parameters")  # defaults applied too
            row = JobSpec(suite.name, te.task, te.options, "", me.method, label, hparams, 0, suite.budget,
                          timeout_s or suite.timeout_s or default_timeout(task_cls), suite.hparams_source_for(me, te.task), given,
                          rehearsal=suite.rehearsal, tuned_under=suite.tuned_under_for(me, te.task))
            jobs += _row_jobs(row, task_targets, list(seeds or te.seeds or suite.seeds), method.name == "original")
            if chains is not None:  # every step of every order, in order: a chain's steps run one after another
                options, chain_given, orders = chains
                chain_seeds = list(seeds or te.sequences.seeds or te.seeds or suite.seeds)
                for order in orders:
                    chain = replace(row, task_options=options, given_checkpoints=chain_given, sequence=order)
                    jobs += _row_jobs(chain, [], chain_seeds, method.name == "original")
    if not jobs:
        raise ConfigError("the selection matches no job (check --tasks/--methods/--targets)")
    planned_sets(jobs)  # every task built at the suite's options, without weights: a suite that cannot be built fails now
    return jobs


def planned_sets(jobs: list[JobSpec]) -> dict[tuple[str, str, str], dict[str, int]]:
    """Build what each job's task builds without weights (Task.plan_sets: prompt sets, class lists, evaluation sets)
    at the job's options, once per (task, options, target, earlier targets), before any job runs or a GPU is booked.
    Returns {(task, target, options digest): {set: size}}; a task that cannot be built at its options is one
    ConfigError naming the task, the target, the option and the limit."""
    out: dict = {}
    for job in jobs:
        key = (job.task, job.target, json_digest({"options": job.task_options, "erased": job.erased}, 12, default=str))
        if key in out:
            continue
        try:
            out[key] = TASKS.get(job.task).make(job.task_options).plan_sets(job.target, job.erased)
        except ConfigError as exc:
            raise ConfigError(f"suite {job.suite!r} cannot be built: task {job.task!r}, target {job.target!r}: {exc}") from None
    return out
