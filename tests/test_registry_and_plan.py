import pytest

from bench.core.errors import ConfigError, PluginError, UnknownNameError
from bench.core.registry import Registry
from bench.runner.plan import load_suite, parse_suite, plan_jobs
from methods.base import METHODS
from metrics.base import METRICS
from tasks.base import TASKS


def test_builtin_names_registered():
    assert {"original", "finetune", "graddiff"} <= set(METHODS.names())
    assert "mini-digits-class" in TASKS.names()
    assert {"class-accuracy", "fid"} <= set(METRICS.names())


def test_unknown_name_lists_known():
    with pytest.raises(UnknownNameError, match="unknown method 'nope'.*graddiff"):
        METHODS.get("nope")


def test_registry_rejects_name_clash():
    reg = Registry("thing")

    @reg.register("a")
    class A:
        pass

    with pytest.raises(PluginError, match="already taken"):

        @reg.register("a")
        class B:
            pass


def test_mini_suite_plans_jobs():
    jobs = plan_jobs(load_suite("mini"))
    assert jobs and all(j.suite == "mini" for j in jobs)
    assert len({j.job_id for j in jobs}) == len(jobs)


def test_setting_hash_ignores_target_and_seed_but_not_hparams():
    suite = parse_suite({"tasks": {"mini-digits-class": {"targets": ["0", "1"]}}, "methods": ["graddiff"], "seeds": [0, 1]})
    jobs = plan_jobs(suite)
    assert len(jobs) == 4 and len({j.setting_hash for j in jobs}) == 1
    other = parse_suite({"tasks": ["mini-digits-class"], "methods": [{"method": "graddiff", "hparams": {"alpha": 2.0}}]})
    assert plan_jobs(other, targets=["0"])[0].setting_hash != jobs[0].setting_hash


def test_a_task_can_replicate_over_its_own_seeds_and_original_runs_once_per_target():
    suite = parse_suite({"tasks": {"mini-digits-class": {"targets": ["0", "1"]}, "mini-shapes-style": {"targets": ["swirl"], "seeds": [0, 1, 2]}},
                         "methods": ["original", "graddiff"], "seeds": [0]})
    jobs = plan_jobs(suite)
    style = sorted((j.method, j.seed) for j in jobs if j.task == "mini-shapes-style")
    assert style == [("graddiff", 0), ("graddiff", 1), ("graddiff", 2), ("original", 0)]  # Original's images do not depend on the seed
    assert sorted(j.seed for j in jobs if j.task == "mini-digits-class") == [0, 0, 0, 0]
    assert {j.seed for j in plan_jobs(suite, seeds=[7])} == {7}  # --seeds overrides every task's


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"tasks": {"mini-shapes-style": {"seeds": []}}, "methods": ["graddiff"]}, "seeds must be a non-empty list"),
        ({"tasks": {"mini-shapes-style": {"seeds": ["a"]}}, "methods": ["graddiff"]}, "seeds must be a non-empty list"),
        ("just a string", "must be a mapping"),
        ({"tasks": ["mini-digits-class"]}, "non-empty 'methods'"),
        ({"tasks": ["mini-digits-class"], "methods": ["graddiff"], "bogus": 1}, "unknown key"),
        ({"tasks": ["mini-digits-class"], "methods": [{"label": "x"}]}, "must be a name or"),
        ({"tasks": ["mini-digits-class"], "methods": ["graddiff", "graddiff"]}, "duplicate method labels"),
    ],
)
def test_bad_suites(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_suite(raw)


def test_bad_names_in_plan():
    with pytest.raises(UnknownNameError, match="unknown task"):
        plan_jobs(parse_suite({"tasks": ["no-such-task"], "methods": ["graddiff"]}))
    with pytest.raises(UnknownNameError, match="unknown method"):
        plan_jobs(parse_suite({"tasks": ["mini-digits-class"], "methods": ["no-such-method"]}))
    with pytest.raises(ConfigError, match="no target '42'"):
        plan_jobs(parse_suite({"tasks": {"mini-digits-class": {"targets": [42]}}, "methods": ["graddiff"]}))
    with pytest.raises(ConfigError, match="no hyper-parameter"):
        plan_jobs(parse_suite({"tasks": ["mini-digits-class"], "methods": [{"method": "graddiff", "hparams": {"lr_typo": 1}}]}))
    with pytest.raises(ConfigError, match="forget_truncation"):
        plan_jobs(parse_suite({"tasks": ["mini-digits-class"], "methods": [{"method": "graddiff", "hparams": {"forget_truncation": "x"}}]}))
    with pytest.raises(ConfigError, match="no option"):
        plan_jobs(parse_suite({"tasks": {"mini-digits-class": {"options": {"nope": 1}}}, "methods": ["graddiff"]}))


def test_malformed_yaml_file(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("name: x\ntasks: [unclosed\n")
    with pytest.raises(ConfigError, match=r"malformed suite YAML .*bad.yaml at line 3, column 1: "):
        load_suite(str(p))
    with pytest.raises(ConfigError, match=r"'seeds' is empty; give at least one seed"):
        parse_suite({"tasks": ["mini-digits-class"], "methods": ["graddiff"], "seeds": []})
    with pytest.raises(ConfigError, match="unknown suite"):
        load_suite("no-such-suite")


def test_methods_from_shares_a_suite_method_list_and_jobs_say_where_hparams_came_from():
    from bench.runner.plan import load_suite, parse_suite, plan_jobs

    ref = load_suite("mini-reference")
    assert ref.hparams_source == "reference"
    full = load_suite("mini-full")
    assert [m.label for m in full.methods] == [m.label for m in load_suite("mini").methods] + ["rgd-narrow", "graddiff-distill", "rgd-distill", "salun-distill", "retrain"]  # methods_from: mini
    jobs = plan_jobs(ref, tasks=["mini-shapes-style"], methods=["rgd"])
    assert {j.hparams_source for j in jobs} == {"reference"}
    tuned = parse_suite({"tasks": ["mini-shapes-style"], "tuning": {"trials": 6, "validation_targets": 1},
                         "methods": [{"method": "rgd", "hparams_by_task": {"mini-shapes-style": {"lr": 3e-4}}, "tuned": ["mini-shapes-style"]}]})
    (job,) = plan_jobs(tuned, targets=["swirl"])
    assert job.hparams_source == "tuned (6 trials x 1 held-out jobs)" and job.hparams == {"lr": 3e-4}
    assert job.setting_hash == plan_jobs(parse_suite({**{"tasks": ["mini-shapes-style"]}, "methods": [
        {"method": "rgd", "hparams_by_task": {"mini-shapes-style": {"lr": 3e-4}}}]}), targets=["swirl"])[0].setting_hash  # a label, not a setting
    for bad in ({"tasks": ["mini-shapes-style"], "methods": "rgd", "methods_from": "mini"},
                {"tasks": ["mini-shapes-style"], "methods": ["rgd"], "hparams_source": "tuned"},
                {"tasks": ["mini-shapes-style"], "methods": [{"method": "rgd", "hparams_by_task": {"x": {}}, "tuned": ["x"]}]},
                {"tasks": ["mini-shapes-style"], "methods": [{"method": "rgd", "tuned": ["mini-shapes-style"]}], "tuning": {"trials": 1}}):
        with pytest.raises(ConfigError):
            parse_suite(bad)


def test_an_ablation_row_follows_its_base_entrys_values():
    """`like`: rgd-narrow runs rgd's (tuned) values per task with its own on top, and follows them when re-tuned."""
    from bench.runner.plan import _entry_data, parse_method_entry

    suite = parse_suite({"tasks": ["mini-shapes-style", "mini-shapes-concept"], "tuning": {"trials": 4, "validation_targets": 3},
                         "methods": [{"method": "rgd", "hparams": {"steps": 7},
                                      "hparams_by_task": {"mini-shapes-style": {"lr": 3e-4, "lam": 2.0}}, "tuned": ["mini-shapes-style"]},
                                     {"method": "rgd", "label": "rgd-narrow", "like": "rgd", "hparams": {"remain_sampling": "narrow"}}]})
    jobs = {(j.task, j.label): j for j in plan_jobs(suite, targets=None) if j.target in ("swirl", "cross")}
    narrow, base = jobs[("mini-shapes-style", "rgd-narrow")], jobs[("mini-shapes-style", "rgd")]
    assert narrow.hparams == {**base.hparams, "remain_sampling": "narrow"} == {"steps": 7, "lr": 3e-4, "lam": 2.0, "remain_sampling": "narrow"}
    assert jobs[("mini-shapes-concept", "rgd-narrow")].hparams == {"steps": 7, "remain_sampling": "narrow"}
    assert narrow.hparams_source == "tuned (4 trials x 3 held-out jobs) values of rgd, then remain_sampling"
    assert _entry_data(suite.methods[1]) == {"method": "rgd", "label": "rgd-narrow", "like": "rgd", "hparams": {"remain_sampling": "narrow"}}
    assert parse_method_entry(_entry_data(suite.methods[1])).like == "rgd"
    from bench.runner.tune import search_plan

    assert search_plan(suite.tasks[0], suite.methods[1]) is None  # not tuned itself
    for bad in ([{"method": "rgd", "label": "n", "like": "rgd"}],  # no earlier rgd
                [{"method": "graddiff"}, {"method": "rgd", "label": "n", "like": "graddiff"}],  # another method
                [{"method": "rgd"}, {"method": "rgd", "like": "rgd"}],  # no label of its own
                [{"method": "rgd"}, {"method": "rgd", "label": "n", "like": "rgd", "hparams_by_task": {"mini-shapes-style": {"lr": 1.0}}}]):
        with pytest.raises(ConfigError, match="like"):
            parse_suite({"tasks": ["mini-shapes-style"], "methods": bad})


def test_a_task_can_skip_rows_of_the_suite():
    """`skip`: the task leaves those rows out (and tune does not tune them there); a method named on the command line still runs."""
    from bench.runner.tune import search_plan, tuned_suite

    raw = {"tasks": {"mini-shapes-style": {"targets": ["swirl"], "skip": ["esd-u"]}, "mini-digits-class": {"targets": ["0"]}},
           "methods": ["graddiff", "esd-u"]}
    suite = parse_suite(raw)
    rows = sorted((j.task, j.label) for j in plan_jobs(suite))
    assert rows == [("mini-digits-class", "esd-u"), ("mini-digits-class", "graddiff"), ("mini-shapes-style", "graddiff")]
    assert {(j.task, j.label) for j in plan_jobs(suite, methods=["esd-u"])} == {("mini-shapes-style", "esd-u"), ("mini-digits-class", "esd-u")}
    style, digits = suite.tasks
    assert search_plan(style, suite.methods[1]) is None and search_plan(digits, suite.methods[1]) is not None
    from bench.runner.tune import TuneSettings

    written = tuned_suite(suite, [], TuneSettings(trials=1, validation_targets=1))
    assert parse_suite(written).tasks[0].skip == ("esd-u",)  # the tuned suite keeps it
    for bad, message in (({"skip": ["esd-x"]}, "not a method label"), ({"skip": "esd-u"}, "list of method labels")):
        with pytest.raises(ConfigError, match=message):
            parse_suite({**raw, "tasks": {"mini-shapes-style": bad}})


def test_mini_runs_finetune_and_esd_u_on_the_class_task_only_and_mini_full_everywhere():
    """The time budget's cut (PROTOCOL, "the default suite"): the rows dropped from mini's text tasks run in mini-full."""
    rows = lambda suite: {(j.task, j.label) for j in plan_jobs(load_suite(suite))}  # noqa: E731
    mini, full = rows("mini"), rows("mini-full")
    for task in ("mini-shapes-concept", "mini-shapes-style"):
        assert (task, "finetune") not in mini and (task, "esd-u") not in mini and (task, "esd-x") in mini
        assert (task, "finetune") in full and (task, "esd-u") in full
    assert ("mini-digits-class", "finetune") in mini and ("mini-digits-class", "esd-u") in mini
    assert {r for r in rows("mini-reference")} == mini
