"""`unlearn-bench tune`: search spaces, held-out validation targets, the tuned suite, and resume."""
import dataclasses
import math

import pytest
import yaml

from bench.core.errors import ConfigError
from bench.runner.plan import MethodEntry, Suite, TaskEntry, parse_suite
from bench.runner.tune import (
    Trial,
    TuneResult,
    TuneSettings,
    per_target_scores,
    report_markdown,
    tuned_suite,
    validation_seeds,
    validation_targets,
)
from methods.base import METHODS
from methods.search_space import AroundResolved, LogUniform, Uniform, declared_space, resolve_space


def test_declared_spaces_key_knobs_or_learning_rate_alone():
    assert declared_space(METHODS.get("rgd")) == {"lr": AroundResolved(10.0), "lam": LogUniform(0.5, 10.0)}
    assert set(declared_space(METHODS.get("graddiff"))) == {"lr", "alpha"}
    assert set(declared_space(METHODS.get("esd-u"))) == {"lr", "negative_guidance"}
    assert declared_space(METHODS.get("finetune")) == {"lr": AroundResolved(10.0)}  # no space declared: lr alone
    assert declared_space(METHODS.get("original")) == {} and declared_space(METHODS.get("retrain")) == {}


def test_learning_rate_is_searched_around_the_resolved_value():
    rgd = METHODS.get("rgd")
    hp = rgd.default_hparams("class", lr=2e-4)
    space = resolve_space(declared_space(rgd), hp)
    assert (space["lr"].low, space["lr"].high) == (pytest.approx(2e-5), pytest.approx(2e-3))
    assert space["lam"] == LogUniform(0.5, 10.0)
    with pytest.raises(ValueError, match="nope"):
        resolve_space({"nope": Uniform(0, 1)}, hp)
    with pytest.raises(ValueError):
        LogUniform(0.0, 1.0)


def test_validation_targets_are_disjoint_from_the_reported_ones():
    held = validation_targets(TaskEntry("mini-digits-class", ("0", "5")), 2)
    assert held == ["1", "2"]
    assert validation_targets(TaskEntry("mini-shapes-style", ("swirl",)), 3) == ["dotted", "striped"]  # all it holds out
    with pytest.raises(ConfigError, match="leave at least one out"):
        validation_targets(TaskEntry("mini-shapes-style"), 1)  # all targets reported
    with pytest.raises(ConfigError):
        TuneSettings(trials=0)


def test_validation_makes_up_for_few_held_out_targets_with_seeds():
    assert validation_seeds(["1", "2", "3"], 3, 0) == [0]  # enough targets: one seed each
    assert validation_seeds(["dotted", "striped"], 3, 0) == [0, 1]  # two styles: two seeds each, 4 jobs >= 3
    assert validation_seeds(["a"], 3, 5) == [5, 6, 7]
    assert per_target_scores([("a", 0.2), ("b", 0.5), ("a", 0.4)]) == {"a": pytest.approx(0.3), "b": 0.5}
    assert math.isnan(per_target_scores([("a", 0.2), ("a", math.nan)])["a"])  # a failed seed fails its target


def test_the_report_shows_each_validation_target_and_the_transfer_gap():
    suite = Suite("s", [TaskEntry("mini-shapes-style", ("swirl",))], [MethodEntry("rgd", "rgd"), MethodEntry("esd-u", "esd-u")], [0])
    trials = [Trial(0, {"lr": 1e-4}, 0.5, [], {"dotted": 0.7, "striped": 0.3}), Trial(1, {"lr": 3e-4}, 0.6, [], {"dotted": 0.9, "striped": 0.3})]
    results = [TuneResult("mini-shapes-style", "rgd", "rgd", {"lr": "log-uniform"}, ["dotted", "striped"], trials, [0, 1]),
               TuneResult("mini-shapes-style", "esd-u", "esd-u", {"lr": "log-uniform"}, ["dotted", "striped"], trials[:1], [0, 1])]
    md = report_markdown(suite, results, TuneSettings(trials=2), {("mini-shapes-style", "rgd"): (0.45, 3)})
    assert "| rgd | lr log-uniform | lr 0.0003 | 0.600 | 0.90 | 0.30 | 0.50 0.60 |" in md  # the best trial's per-target scores
    assert "| rgd | 1 | 0.70 | 0.30 |" in md and "seeds 0, 1" in md
    assert "| mini-shapes-style | rgd | 0.600 | 0.450 (3) | -0.150 |" in md
    assert "| mini-shapes-style | esd-u | 0.500 | not run | – |" in md
    assert "Transfer" not in report_markdown(suite, results, TuneSettings(trials=2))


def test_tuned_suite_carries_the_chosen_values_per_task_and_parses():
    suite = Suite("s", [TaskEntry("mini-digits-class", ("0",)), TaskEntry("mini-shapes-style", ("swirl",))],
                  [MethodEntry("original", "original"),
                   MethodEntry("rgd", "rgd", {"steps": 200}, {"mini-digits-class": {"batch_size": 64}}),
                   MethodEntry("rgd", "rgd-narrow", {"remain_sampling": "narrow"})], [0, 1], {"max_steps": 5})
    trials = [Trial(0, {"lr": 1e-4, "lam": 2.0}, 0.4), Trial(1, {"lr": 3e-4, "lam": 1.23456}, 0.7), Trial(2, {"lr": 1e-3, "lam": 9.0}, math.nan)]
    res = [TuneResult("mini-digits-class", "rgd", "rgd", {}, ["1"], trials),
           TuneResult("mini-shapes-style", "rgd-narrow", "rgd", {}, ["dotted"], [Trial(0, {"lr": 5e-5, "lam": 3.0}, 0.2)])]
    assert res[0].best.number == 1
    data = tuned_suite(suite, res, TuneSettings(trials=3), name="s-tuned")
    parsed = parse_suite(yaml.safe_load(yaml.safe_dump(data)))
    assert parsed.name == "s-tuned" and parsed.tuning["trials"] == 3
    rgd, narrow = parsed.methods[1], parsed.methods[2]
    assert rgd.hparams == {"steps": 200}
    assert rgd.hparams_by_task == {"mini-digits-class": {"batch_size": 64, "lr": 3e-4, "lam": 1.235}}
    assert narrow.label == "rgd-narrow" and narrow.hparams_by_task == {"mini-shapes-style": {"lr": 5e-5, "lam": 3.0}}
    assert rgd.tuned == ("mini-digits-class",) and narrow.tuned == ("mini-shapes-style",) and parsed.methods[0].tuned == ()
    # the records say so: tuned (with the budget) where selected, the suite's own source elsewhere
    assert parsed.hparams_source_for(rgd, "mini-digits-class") == "tuned (3 trials x 3 held-out jobs)"
    assert parsed.hparams_source_for(rgd, "mini-shapes-style") == parsed.hparams_source_for(parsed.methods[0], "x") == "given"
    assert parsed.seeds == [0, 1] and parsed.budget == {"max_steps": 5} and parsed.tasks[0].targets == ("0",)
    # what the points were selected under: today's rule, protocol and each method's code hash, carried to the jobs
    from bench.runner.method_code import method_code_hash
    from bench.runner.plan import PROTOCOL_VERSION
    from leaderboard.score import DEFAULT_RULE

    assert parsed.tuning["rule"] == DEFAULT_RULE and parsed.tuning["protocol_version"] == PROTOCOL_VERSION
    assert parsed.tuning["method_code"] == {"rgd": method_code_hash("rgd"), "rgd-narrow": method_code_hash("rgd")}
    assert parsed.tuned_under_for(rgd, "mini-digits-class") == {"rule": DEFAULT_RULE, "protocol_version": PROTOCOL_VERSION,
                                                                 "method_code": method_code_hash("rgd")}
    assert parsed.tuned_under_for(rgd, "mini-shapes-style") == {}  # not tuned there: nothing to go stale
    assert parsed.tuning["sampler_seeds"]["rgd"] != parsed.tuning["sampler_seeds"]["rgd-narrow"]


def test_the_searcher_starts_random_for_a_third_and_seeds_each_method_apart():
    assert TuneSettings(trials=12).startup_trials == 4 and TuneSettings(trials=4).startup_trials == 1
    assert TuneSettings(trials=2).startup_trials == 1  # at least one random start
    s = TuneSettings(trials=12, seed=0)
    seeds = {m: s.sampler_seed(m) for m in ("rg", "rgd", "graddiff", "salun", "esd-u", "esd-x", "finetune", "uce", "ca")}
    assert len(set(seeds.values())) == len(seeds)  # RG and RGD share a space: they must not share the draws
    assert s.sampler_seed("rgd") == TuneSettings(trials=4, seed=0).sampler_seed("rgd")  # stable: a resumed search repeats
    assert s.sampler_seed("rgd") != TuneSettings(seed=1).sampler_seed("rgd")


def test_method_code_hash_follows_the_methods_own_modules_only():
    from bench.runner.method_code import method_code_hash, package_closure
    from methods.base import METHODS

    closure = package_closure(METHODS.get("rgd").__module__)
    assert "methods.rgd" in closure and "methods.losses" in closure and "methods.salun" not in closure
    assert method_code_hash("rgd") != method_code_hash("graddiff") and len(method_code_hash("rgd")) == 12
    assert method_code_hash("no-such-method") == "unknown"


@pytest.mark.slow
def test_tune_runs_with_ray_tune_and_resumes(tmp_path, monkeypatch):
    """Two trials, then three: the first two are read back from their records (resume), one job is new."""
    from bench.cli import main

    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "t", "seeds": [0], "budget": {"max_steps": 1},
        "tasks": {"mini-digits-class": {"targets": [str(c) for c in range(9)] + [],
                                        "options": {"forget_samples": 4, "remain_samples_per_class": 2, "sample_steps": 2}}},
        "methods": ["original", {"method": "finetune", "hparams": {"batch_size": 8}}],
    }))
    monkeypatch.chdir(tmp_path)  # a relative --out: Ray Tune runs trials in their own working directories
    out = tmp_path / "tune"
    args = ["tune", "--suite", str(suite), "--out", "tune", "--threads", "1"]
    assert main([*args, "--trials", "2"]) == 0
    first = {p.name for p in (out / "records").glob("*.json")}
    # Original + 2 trials × 3 seeds (one held-out class: seeds make up the 3 validation jobs), all on class 9
    assert len(first) == 7 and all("__t9__" in n for n in first)
    assert {n.split("__")[3] for n in first} == {"s0", "s1", "s2"}
    assert main([*args, "--trials", "3"]) == 0
    second = {p.name for p in (out / "records").glob("*.json")}
    assert first < second and len(second - first) == 3
    report = (out / "TUNING.md").read_text()
    assert "finetune" in report and "Validation targets (never reported): 9, seeds 0, 1, 2" in report
    tuned = parse_suite(yaml.safe_load((out / "tuned-t.yaml").read_text()))
    assert set(tuned.methods[1].hparams_by_task["mini-digits-class"]) == {"lr"}
    assert (out / "plots" / "tune-mini-digits-class.png").exists()
    (out / "TUNING.md").unlink()
    assert main([*args, "--trials", "3", "--report-only"]) == 0  # the same report, from the records alone
    assert (out / "TUNING.md").read_text() == report


def _trial_record(label, target, hparams, ua, ra, started, status="ok"):
    return {"job_id": f"d__{label}__t{target}__{started}", "suite": "tune:s", "task": "mini-digits-class", "label": label,
            "method": label, "target": target, "seed": 0, "status": status, "started": started, "hparams": hparams,
            "setting_hash": "h" * 16, "metrics": {"UA (digit-cnn)": ua, "RA (digit-cnn)": ra} if status == "ok" else {}}


def test_report_from_records_numbers_trials_in_start_order_and_scores_against_original(tmp_path):
    from bench.runner.records import write_record
    from bench.runner.tune import results_from_records

    te = TaskEntry("mini-digits-class", ("0",))
    me = MethodEntry("finetune", "finetune", {"steps": 100})
    suite = Suite("s", [te], [MethodEntry("original", "original"), me], [0])
    for rec in (_trial_record("original", "1", {}, 0.0, 1.0, "t0"),
                _trial_record("finetune", "1", {"steps": 100, "lr": 2e-4}, 0.5, 0.5, "t2"),  # second trial: F .5 K .5
                _trial_record("finetune", "1", {"steps": 100, "lr": 1e-4}, 1.0, 1.0, "t1"),  # first: F 1 K 1
                _trial_record("finetune", "1", {"steps": 100, "lr": 3e-4}, 0, 0, "t3", status="failed"),
                _trial_record("finetune", "1", {"steps": 50, "lr": 1e-4}, 1.0, 1.0, "t4"),  # another search's point
                _trial_record("finetune", "0", {"steps": 100, "lr": 1e-4}, 1.0, 1.0, "t5")):  # a reported target: never read
        write_record(tmp_path, rec)
    res = results_from_records(suite, te, me, {"steps": 100, "lr": 1e-4}, {"lr": LogUniform(1e-5, 1e-3)}, ["1"], tmp_path,
                               TuneSettings(trials=8, validation_targets=1))  # the suite's own lr is a searched key: not a filter
    assert [(t.number, t.hparams, t.score) for t in res.trials[:2]] == [(0, {"lr": 1e-4}, 1.0), (1, {"lr": 2e-4}, 0.5)]
    assert math.isnan(res.trials[2].score) and len(res.trials) == 3 and res.best.hparams == {"lr": 1e-4}
    capped = results_from_records(suite, te, me, {"steps": 100}, {"lr": LogUniform(1e-5, 1e-3)}, ["1"], tmp_path, TuneSettings(trials=1, validation_targets=1))
    assert len(capped.trials) == 1
    # the tuned suite's method code is what the chosen point's jobs ran (their records), not the code of today
    from bench.runner.method_code import method_code_hash
    from bench.runner.tune import MIXED_CODE, chosen_method_codes

    assert chosen_method_codes([res], tmp_path) == {"finetune": method_code_hash("finetune")}  # records without it: today's
    for rec, code in ((_trial_record("finetune", "1", {"steps": 100, "lr": 1e-4}, 1.0, 1.0, "t1"), "c0de"),):
        write_record(tmp_path, {**rec, "method_code": code})
    assert chosen_method_codes([res], tmp_path) == {"finetune": "c0de"}
    other = dataclasses.replace(res, task="mini-shapes-style", trials=[dataclasses.replace(t, job_ids=list(t.job_ids)) for t in res.trials])
    write_record(tmp_path, {**_trial_record("finetune", "1", {"steps": 100, "lr": 1e-4}, 1.0, 1.0, "t1"), "method_code": "c0de",
                            "job_id": "x", "task": "mini-shapes-style"})
    other.best.job_ids[:] = ["x"]
    assert chosen_method_codes([res, other], tmp_path) == {"finetune": "c0de"}
    write_record(tmp_path, {**_trial_record("finetune", "1", {"steps": 100, "lr": 1e-4}, 1.0, 1.0, "t1"), "method_code": "beef",
                            "job_id": "x", "task": "mini-shapes-style"})
    assert chosen_method_codes([res, other], tmp_path) == {"finetune": MIXED_CODE}  # two codes behind one label's choices


def test_a_submitted_methods_code_hash_is_its_shipped_text_not_a_path_on_the_worker(tmp_path):
    from bench.runner.job import base_record
    from bench.runner.method_code import method_code_hash
    from bench.runner.plan import JobSpec
    from bench.runner.plugins import MethodSource

    path = tmp_path / "m.py"
    path.write_text("# a method\n")
    spec = JobSpec("s", "mini-digits-class", {}, "0", f"{path}:M", "m", {}, 0, {})
    shipped = MethodSource(str(path), "M", "# a method\n")
    assert base_record(spec, shipped)["method_code"] == method_code_hash(f"{path}:M") == shipped.sha256[:12]
    path.write_text("# another file under the same name on this machine\n")  # a worker never reads it
    assert base_record(spec, shipped)["method_code"] == shipped.sha256[:12]
    assert base_record(JobSpec("s", "mini-digits-class", {}, "0", "rgd", "rgd", {}, 0, {}))["method_code"] == method_code_hash("rgd")


def test_best_so_far_and_whether_the_search_flattened_by_hand():
    from bench.runner.tune import Trial, best_so_far, flattened, report_markdown

    scores = [0.2, math.nan, 0.1, 0.5, 0.4, 0.5, 0.505, 0.3, 0.45]
    trials = [Trial(i, {"lr": 1e-4}, s) for i, s in enumerate(scores)]
    assert best_so_far(trials) == [0.2, 0.2, 0.2, 0.5, 0.5, 0.5, 0.505, 0.505, 0.505]  # a failed trial gains nothing
    assert all(a <= b for a, b in zip(best_so_far(trials), best_so_far(trials)[1:]))
    assert flattened(best_so_far(trials)) == (True, pytest.approx(0.005))  # the last third (trials 7-9) gained 0.005
    rising = best_so_far(trials[:8] + [Trial(8, {}, 0.9)])
    assert flattened(rising) == (False, pytest.approx(0.4))
    assert math.isnan(best_so_far([Trial(0, {}, math.nan)])[0])
    te = TaskEntry("mini-digits-class", ("0",))
    suite = Suite("s", [te], [MethodEntry("original", "original")], [0])
    full = TuneResult("mini-digits-class", "rgd", "rgd", {}, ["1"], trials)
    cut = TuneResult("mini-digits-class", "rg", "rg", {}, ["1"], trials[:4])
    md = report_markdown(suite, [full, cut], TuneSettings(trials=9, validation_targets=1))
    assert "| rgd | 0.20 | 0.20 | 0.20 | 0.50 | 0.50 | 0.50 | 0.51 | 0.51 | 0.51 | flat |" in md
    assert "| rg | 0.20 | 0.20 | 0.20 | 0.50 |  |  |  |  |  | incomplete (4 of 9 trials) |" in md
