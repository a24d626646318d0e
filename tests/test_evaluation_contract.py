"""The typed contract between tasks and metrics (bench/core/evaluation.py): checked when a job is
planned, and again when a task builds an instance."""
import dataclasses

import pytest
import torch

from bench.core.errors import ConfigError
from bench.core.evaluation import FIELDS, Evaluation, ZeroShot, check_requirements, missing
from bench.runner.plan import parse_suite, plan_jobs
from metrics.base import METRICS, Metric, register_metric
from tasks.base import TASKS, TaskInstance


def test_every_builtin_task_provides_what_its_metrics_require():
    for name in TASKS.names():
        for options in ({}, {"attack": True}):
            cls = TASKS.get(name)
            if options and "attack" not in {f.name for f in dataclasses.fields(cls.Config)}:
                continue
            task = cls.make(options)
            task.check_metrics()
            assert all(r.split(":")[0] in FIELDS for m in task.metrics for req in METRICS.get(m).requires for r in req.split("|")), name


def test_a_metric_the_task_cannot_serve_fails_at_plan_time(monkeypatch):
    @register_metric
    class NeedsJudge(Metric):
        name = "needs-judge-test"
        requires = ("clip_judge", "eval_sets:remain_test")

        def columns(self, inst):
            return {}

        def compute(self, inst, unlearned, original, ctx):
            return {}

    try:
        monkeypatch.setattr(TASKS.get("mini-digits-class"), "metrics", ("class-accuracy", "needs-judge-test"))
        suite = parse_suite({"tasks": {"mini-digits-class": {"targets": ["0"]}}, "methods": ["original"]})
        with pytest.raises(ConfigError, match=r"metric 'needs-judge-test' needs clip_judge, eval_sets:remain_test"):
            plan_jobs(suite)
    finally:
        METRICS._items.pop("needs-judge-test", None)


def test_requirements_with_alternatives():
    assert missing(["a|b", "c"], {"b", "c"}) == []
    assert missing(["a|b", "c"], {"c"}) == ["a|b"]
    with pytest.raises(ConfigError, match="metric 'm' needs x"):
        check_requirements("t", {"y"}, {"m": ("x",), "ok": ("y",)})


def test_provided_reads_the_fields_that_are_set():
    ev = Evaluation(eval_sets={"forget": ([0], [0])}, fid_reference=torch.zeros(3, 2), zero_shot=ZeroShot(["a"], 0))
    got = ev.provided()
    assert {"eval_sets:forget", "eval_sets", "fid_reference", "zero_shot", "retention_set", "nudity_set"} <= got
    assert not {"clip_judge", "original_images", "nudenet_judge", "eval_sets:remain"} & got


def test_an_instance_whose_task_did_not_fill_what_it_declared_is_refused():
    task = TASKS.get("mini-digits-class").make({})
    with pytest.raises(ConfigError, match="declares .*fid_extractor.* but its build\\(\\) did not set it"):
        TaskInstance(task, "0", None, None, None, Evaluation(eval_sets={"forget": ([0], [0]), "remain": ([1], [1])}))
