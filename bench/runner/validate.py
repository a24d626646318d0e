"""`unlearn-bench validate`: does the mini world tell known-good from known-bad?

Runs Original, Finetune, a deliberately destructive method (re-initialised denoiser,
bench/runner/validity_reinit.py) and, with --retrain, Retrain on the mini tasks through the ordinary
harness, then checks the verdicts the leaderboard would give:

- original-recognised    the judge recognises the target in Original's samples (UA ≤ 0.3)
- destructive-last       the re-initialised model is the worst row on every keep column (RA, FID, AS…)
- destructive-no-win     it keeps little (K < 0.5), so it scores < 0.5 whatever it "forgets"
- finetune-barely-forgets Finetune on D_r alone removes ≤ 20% of what Original had left to forget (F ≤ 0.2)
- retrain-forgets-keeps  (--retrain) Retrain forgets (F ≥ 0.8), keeps (K ≥ 0.8) and outscores the destroyer

F, K and the score are leaderboard/score.py's, on the rows' means.
"""
from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import yaml

from bench.core.log import get_logger
from bench.runner.evaluator import run_suite, write_leaderboard
from bench.runner.records import iter_records
from leaderboard.aggregate import aggregate, short_name
from leaderboard.score import forget_gain, harmonic, keep

DESTRUCTIVE = str(Path(__file__).with_name("validity_reinit.py"))
DESTRUCTIVE_LABEL = "reinit-denoiser"
TASKS = {"mini-digits-class": ["0"], "mini-shapes-concept": ["cross"]}
SHARED = {"lr": 1.0e-4, "steps": 200}  # mini-reference's shared lr, at twice its steps (a harder test for "Finetune barely forgets")
KEEP_SHORT = ("RA", "FID", "AS", "AS-train", "AS-test", "retention")
ORIGINAL_MAX_UA = 0.3
FINETUNE_MAX_GAIN = 0.2
DESTRUCTIVE_MAX_KEEP = 0.5
RETRAIN_MIN = 0.8


@dataclass(frozen=True)
class Check:
    task: str
    name: str
    passed: bool
    detail: str

    def line(self) -> str:
        return f"{'PASS' if self.passed else 'FAIL'} {self.task}: {self.name}: {self.detail}"


def validation_suite(tasks: dict[str, list[str]], retrain: bool, max_steps: int | None, options: dict | None = None) -> dict:
    methods = ["original", {"method": "finetune", "hparams": dict(SHARED)}, {"method": DESTRUCTIVE, "label": DESTRUCTIVE_LABEL}]
    if retrain:
        methods.insert(1, "retrain")
    return {
        "name": "validate",
        "seeds": [0],
        "tasks": {t: {"targets": list(targets), **({"options": options[t]} if options and t in options else {})} for t, targets in tasks.items()},
        "methods": methods,
        "budget": {"max_steps": max_steps},
    }


def _gain_keep(row, orig, cols) -> tuple[float, float]:
    """F and K (the leaderboard's rule: integrity included when the task records it) of a row's means."""
    means = {c: row.get(f"{c} mean") for c in cols.used}
    floor = {z: orig.get(f"{z} mean") for z in (cols.floor, cols.safe_floor) if z}
    return (
        forget_gain(row[f"{cols.forget} mean"], orig[f"{cols.forget} mean"], cols.ideal),
        keep(means, {c: orig.get(f"{c} mean") for c in cols.used} | floor, cols),
    )


def checks(records: list[dict]) -> list[Check]:
    """The verdicts, per task, from the validation run's records."""

    out = []
    for t in aggregate(records):
        if t.rows.empty:
            out.append(Check(t.task, "ran", False, "no finished jobs"))
            continue
        rows = t.rows.set_index("label")
        cols = t.score
        missing = [l for l in ("original", "finetune", DESTRUCTIVE_LABEL) if l not in rows.index]
        if missing or cols is None:
            out.append(Check(t.task, "ran", False, f"missing rows {missing}" if missing else "no forget/keep metrics"))
            continue
        orig, bad, ft = rows.loc["original"], rows.loc[DESTRUCTIVE_LABEL], rows.loc["finetune"]
        if cols.direction == "↑":
            ua = orig[f"{cols.forget} mean"]
            out.append(Check(t.task, "original-recognised", ua <= ORIGINAL_MAX_UA, f"Original {cols.forget} = {ua:.3f} (≤ {ORIGINAL_MAX_UA})"))
        for c in t.metric_columns:
            if short_name(c) not in KEEP_SHORT:
                continue
            means = rows[f"{c} mean"].dropna()
            worse = means.drop(DESTRUCTIVE_LABEL)
            up = t.directions.get(c, "↑") == "↑"
            last = bool((bad[f"{c} mean"] < worse).all() if up else (bad[f"{c} mean"] > worse).all())
            out.append(Check(t.task, "destructive-last", last, f"{c}: {DESTRUCTIVE_LABEL} {bad[f'{c} mean']:.3f} vs others {', '.join(f'{l} {v:.3f}' for l, v in worse.items())}"))
        f_bad, k_bad = _gain_keep(bad, orig, cols)
        s_bad = harmonic(f_bad, k_bad)
        out.append(Check(t.task, "destructive-no-win", k_bad < DESTRUCTIVE_MAX_KEEP and s_bad < DESTRUCTIVE_MAX_KEEP, f"K = {k_bad:.3f}, F = {f_bad:.3f}, score = {s_bad:.3f} (K and score < {DESTRUCTIVE_MAX_KEEP})"))
        f_ft, k_ft = _gain_keep(ft, orig, cols)
        out.append(Check(t.task, "finetune-barely-forgets", f_ft <= FINETUNE_MAX_GAIN, f"F = {f_ft:.3f} (≤ {FINETUNE_MAX_GAIN}), K = {k_ft:.3f}"))
        if "retrain" in rows.index:
            f_rt, k_rt = _gain_keep(rows.loc["retrain"], orig, cols)
            s_rt = harmonic(f_rt, k_rt)
            ok = f_rt >= RETRAIN_MIN and k_rt >= RETRAIN_MIN and s_rt > s_bad
            out.append(Check(t.task, "retrain-forgets-keeps", ok, f"F = {f_rt:.3f}, K = {k_rt:.3f} (≥ {RETRAIN_MIN}); score {s_rt:.3f} vs destroyer {s_bad:.3f}"))
    return out


def cmd_validate(args: argparse.Namespace) -> int:
    tasks = {t: (args.targets or TASKS.get(t) or ["0"]) for t in (args.tasks or TASKS)}
    suite = validation_suite(tasks, args.retrain, args.max_steps)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "validate-suite.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    args.tasks = None  # the suite already holds the selection
    args.targets = None
    run_suite(str(path), args)
    write_leaderboard(str(out), echo=False)
    results = checks([r for r in iter_records(out) if r.suite == "validate"])
    for c in results:
        print(c.line())
    failed = sum(not c.passed for c in results)
    get_logger("validate").info(f"validate: {len(results) - failed} passed, {failed} failed; leaderboard: {out / 'LEADERBOARD.md'}")
    return 1 if failed or not results else 0
