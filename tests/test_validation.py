"""Suites are type-checked at plan time: one-line errors before any job starts."""
import pytest

from bench.cli import main
from bench.core.errors import ConfigError
from bench.runner.plan import parse_suite, plan_jobs
from tests.helpers import FAST_DIGITS


def suite(methods=("finetune",), task=None, budget=None):
    raw = {"tasks": {"mini-digits-class": task if task is not None else {"targets": ["0"], "options": dict(FAST_DIGITS)}}, "methods": list(methods)}
    if budget is not None:
        raw["budget"] = budget
    return raw


def plan(raw):
    return plan_jobs(parse_suite(raw))


@pytest.mark.parametrize(
    "raw, message",
    [
        (suite([{"method": "finetune", "hparams": {"lr": "fast"}}]), "lr = 'fast' is not a number"),
        (suite([{"method": "finetune", "hparams": {"steps": "many"}}]), "steps = 'many' is not an integer"),
        (suite([{"method": "finetune", "hparams": [1, 2]}]), "hparams must be a mapping"),
        (suite([{"method": "finetune", "hparams_by_task": {"mini-digits-class": [1]}}]), "hparams_by_task must map"),
        ({**suite(), "methods": "finetune"}, "'methods' must be a list"),
        (suite(task={"targets": ["0"], "options": [1, 2]}), "options must be a mapping"),
        (suite(task={"targets": []}), "empty 'targets' list"),
        (suite(budget={"max_steps": -5}), "max_steps must be a positive integer or null"),
        (suite(budget={"max_steps": "2"}), "max_steps must be a positive integer or null"),
        (suite(task={"targets": ["0"], "options": {"forget_samples": "lots"}}), "forget_samples = 'lots' is not an integer"),
        (suite(task={"targets": ["0"], "options": {"guidance": [2]}}), "guidance = [2] is not a number"),
    ],
)
def test_bad_types_fail_at_plan_time(raw, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")) as err:
        plan(raw)
    assert "\n" not in str(err.value)


def test_numeric_strings_become_numbers_and_valid_values_keep_their_hash():
    (job,) = plan(suite([{"method": "finetune", "hparams": {"lr": "1e-4", "steps": "3"}}]))
    assert job.hparams == {"lr": 1e-4, "steps": 3}
    (a,) = plan(suite([{"method": "finetune", "hparams": {"lr": 1.0e-4, "steps": 3}}]))
    assert a.setting_hash == job.setting_hash
    (b,) = plan(suite(task={"targets": ["0"], "options": {**FAST_DIGITS, "guidance": "2.5"}}))
    assert b.task_options["guidance"] == 2.5


def test_dry_run_with_a_bad_task_option_is_one_line(tmp_path, capsys):
    import yaml

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(suite(task={"targets": ["0"], "options": {"sample_steps": "four"}})))
    assert main(["run", "--suite", str(path), "--dry-run", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("unlearn-bench: error:") and "sample_steps = 'four' is not an integer" in err[-1]
