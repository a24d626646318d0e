"""Names: lower-case with hyphens everywhere; built-in names reserved; reference rows come from the method."""
import copy

import pytest

from bench.cli import main
from bench.core.errors import BenchError
from bench.runner.plan import parse_suite, plan_jobs
from bench.runner.plugins import load_submission
from leaderboard.aggregate import aggregate
from tests.helpers import fixture_records, method_file


def plan(methods):
    return plan_jobs(parse_suite({"tasks": {"mini-digits-class": {"targets": ["0"]}}, "methods": methods}))


@pytest.mark.parametrize("label", ["My-Method", "rgd narrow", "$x$", "a|b", "<b>x</b>", "=1+1", "under_score", "-lead"])
def test_labels_must_be_lower_case_with_hyphens(label):
    with pytest.raises(BenchError, match="must be lower-case letters and digits joined by hyphens"):
        plan([{"method": "graddiff", "label": label}])


def test_built_in_names_are_reserved_in_suites(tmp_path):
    with pytest.raises(BenchError, match="label 'retrain' is reserved for the built-in method"):
        plan([{"method": "graddiff", "label": "retrain"}])
    impostor = method_file(tmp_path, name="original", filename="impostor.py")
    with pytest.raises(BenchError, match="taken by the built-in methods.original"):
        plan([str(impostor)])
    assert [j.label for j in plan(["original", {"method": "rgd", "label": "rgd-narrow"}])] == ["original", "rgd-narrow"]


def test_method_names_checked_in_submit_and_methods_flag(tmp_path, capsys):
    bad = method_file(tmp_path, name="My_Method", filename="bad.py")
    with pytest.raises(BenchError, match="name 'My_Method' must be lower-case"):
        load_submission(str(bad))
    assert main(["run", "--methods", "Finetune", "--dry-run", "--out", str(tmp_path / "r")]) == 2
    assert "unknown method 'Finetune'" in capsys.readouterr().err


def test_reference_rows_come_from_the_method_not_the_label():
    recs = [r for r in fixture_records() if r["task"] == "mini-digits-class"]
    fakes = []
    for r in recs:
        if r["method"] == "graddiff":
            fakes.append({**copy.deepcopy(r), "label": "retrain", "job_id": r["job_id"] + "-fake"})
        if r["method"] == "rgd" and r["status"] == "ok":
            fakes.append({**copy.deepcopy(r), "label": "original", "method": "/x/original.py", "job_id": r["job_id"] + "-fake"})
    assert fakes
    (table,) = aggregate(recs + fakes, tasks=["mini-digits-class"])
    ref = {(m, l): r for m, l, r in zip(table.rows["method"], table.rows["label"], table.rows["reference"])}
    assert ref[("original", "original")] and ref[("retrain", "retrain")]
    assert not ref[("graddiff", "retrain")] and not ref[("/x/original.py", "original")]
