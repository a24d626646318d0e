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


@pytest.mark.parametrize(
    "raw, message",
    [
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
    p.write_text("tasks: [unclosed\n")
    with pytest.raises(ConfigError, match="malformed suite YAML"):
        load_suite(str(p))
    with pytest.raises(ConfigError, match="unknown suite"):
        load_suite("no-such-suite")


def test_methods_from_shares_a_suite_method_list_and_jobs_say_where_hparams_came_from():
    from bench.runner.plan import load_suite, parse_suite, plan_jobs

    ref = load_suite("mini-reference")
    assert ref.hparams_source == "reference"
    full = load_suite("mini-full")
    assert [m.label for m in full.methods] == [m.label for m in load_suite("mini").methods] + ["retrain"]  # methods_from: mini
    jobs = plan_jobs(ref, tasks=["mini-shapes-style"], methods=["rgd"])
    assert {j.hparams_source for j in jobs} == {"reference"}
    tuned = parse_suite({"tasks": ["mini-shapes-style"], "tuning": {"trials": 6, "validation_targets": 1},
                         "methods": [{"method": "rgd", "hparams_by_task": {"mini-shapes-style": {"lr": 3e-4}}, "tuned": ["mini-shapes-style"]}]})
    (job,) = plan_jobs(tuned, targets=["swirl"])
    assert job.hparams_source == "tuned (6 trials x 1 held-out target)" and job.hparams == {"lr": 3e-4}
    assert job.setting_hash == plan_jobs(parse_suite({**{"tasks": ["mini-shapes-style"]}, "methods": [
        {"method": "rgd", "hparams_by_task": {"mini-shapes-style": {"lr": 3e-4}}}]}), targets=["swirl"])[0].setting_hash  # a label, not a setting
    for bad in ({"tasks": ["mini-shapes-style"], "methods": "rgd", "methods_from": "mini"},
                {"tasks": ["mini-shapes-style"], "methods": ["rgd"], "hparams_source": "tuned"},
                {"tasks": ["mini-shapes-style"], "methods": [{"method": "rgd", "hparams_by_task": {"x": {}}, "tuned": ["x"]}]},
                {"tasks": ["mini-shapes-style"], "methods": [{"method": "rgd", "tuned": ["mini-shapes-style"]}], "tuning": {"trials": 1}}):
        with pytest.raises(ConfigError):
            parse_suite(bad)
