"""Sequential unlearning, the harness side (bench/runner/plan.py `sequences`, bench/runner/chains.py):
a suite's orders become chains of jobs, each step starts from the step before's model, resume and
failures follow the chain, and ordinary jobs are untouched."""
import json
import shutil

import pytest
import yaml

from bench.cli import main
from bench.core.errors import ConfigError
from bench.runner.artifacts import artifact_dir, load_state_dict
from bench.runner.plan import load_suite, parse_suite, plan_jobs
from bench.runner.records import iter_records
from tests.helpers import FAST_DIGITS

# a method that reports where it started: the sum of its starting weights and the classes of its D_r
FINGERPRINT = '''
from dataclasses import dataclass
import torch
from bench import Method


@dataclass
class HP:
    pass


class Fingerprint(Method):
    name = "fingerprint"
    HParams = HP

    def unlearn(self, model, forget, remain, budget, ctx):
        start = float(sum(p.double().sum() for p in model.denoiser.state_dict().values()))
        with torch.no_grad():
            model.denoiser.class_embedding.weight[int(forget.keys[0])] += 1.0  # a change the next step can see
        ctx.step(torch.tensor(0.0))
        return {"start_sum": start, "remain_classes": sorted({int(k) for k in remain.keys}),
                "forget_classes": sorted({int(k) for k in forget.keys})}
'''

CRASH = '''
import os
from dataclasses import dataclass
from bench import Method


@dataclass
class HP:
    pass


class Crash(Method):
    name = "crash"
    HParams = HP

    def unlearn(self, model, forget, remain, budget, ctx):
        os._exit(3)
'''


def suite_file(tmp_path, methods, orders=(("3", "5"),), targets=("3",), seeds=(0,)):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({
        "name": "seq", "seeds": list(seeds), "budget": {"max_steps": 2},
        "tasks": {"mini-digits-class": {"targets": list(targets), "options": FAST_DIGITS,
                                        "sequences": {"orders": [list(o) for o in orders]}}},
        "methods": methods}))
    return path


def weight_sum(path) -> float:
    state, _ = load_state_dict(path)
    return float(sum(v.double().sum() for v in state.values()))


def test_a_suite_order_becomes_a_chain_per_row_and_seed(tmp_path):
    suite = load_suite(str(suite_file(tmp_path, ["original", "graddiff"], orders=[("3", "5", "8")], seeds=(0, 1))))
    jobs = plan_jobs(suite)
    chains = [j for j in jobs if j.sequence]
    assert len([j for j in jobs if not j.sequence]) == 1 + 2  # the ordinary jobs: Original once, graddiff × 2 seeds
    assert [(j.label, j.seed, j.target, j.erased) for j in chains] == [
        ("original", 0, "3", ()), ("original", 0, "5", ("3",)), ("original", 0, "8", ("3", "5")),
        ("graddiff", 0, "3", ()), ("graddiff", 0, "5", ("3",)), ("graddiff", 0, "8", ("3", "5")),
        ("graddiff", 1, "3", ()), ("graddiff", 1, "5", ("3",)), ("graddiff", 1, "8", ("3", "5"))]
    by_id = {j.job_id: j for j in jobs}
    assert len(by_id) == len(jobs)  # a chain's step is never the ordinary job of its target
    step = chains[5]
    assert step.previous() == chains[4] and chains[3].previous() is None
    assert step.setting()["sequence_step"] == 2 and "sequence_step" not in jobs[0].setting()
    # --targets picks single targets: no chain runs
    assert not any(j.sequence for j in plan_jobs(suite, targets=["3"]))


def test_sequences_leave_ordinary_job_ids_alone(tmp_path):
    plain = plan_jobs(load_suite(str(suite_file(tmp_path, ["graddiff"]))))
    raw = yaml.safe_load((tmp_path / "s.yaml").read_text())
    del raw["tasks"]["mini-digits-class"]["sequences"]
    assert [j.job_id for j in plain if not j.sequence] == [j.job_id for j in plan_jobs(parse_suite(raw))]


@pytest.mark.parametrize("sequences,match", [
    ({"orders": [["3"]]}, "two or more distinct"),
    ({"orders": [["3", "3"]]}, "two or more distinct"),
    ({"orders": [["3", "12"]]}, "no target '12'"),
    ({"orders": "3,5"}, "non-empty list of target lists"),
    ({"orders": [["3", "5"]], "when": 1}, "takes 'orders'"),
])
def test_bad_sequences_are_one_error(sequences, match):
    raw = {"tasks": {"mini-digits-class": {"sequences": sequences}}, "methods": ["graddiff"]}
    with pytest.raises(ConfigError, match=match):
        plan_jobs(parse_suite(raw))


def test_sequences_need_a_task_that_supports_them_and_no_neighbours():
    with pytest.raises(ConfigError, match="does not support sequences"):
        plan_jobs(parse_suite({"tasks": {"sd-nudity": {"sequences": {"orders": [["nudity", "nudity2"]]}}}, "methods": ["esd-x"]}))
    raw = {"tasks": {"mini-shapes-concept": {"options": {"neighbours": True}, "sequences": {"orders": [["cross", "circle"]]}}},
           "methods": ["esd-x"]}
    with pytest.raises(ConfigError, match="neighbours"):
        plan_jobs(parse_suite(raw))
    raw["tasks"]["mini-shapes-concept"]["sequences"]["options"] = {"neighbours": False}
    assert any(j.sequence for j in plan_jobs(parse_suite(raw)))


def test_each_step_starts_from_the_previous_steps_model_and_is_judged_on_the_earlier_targets(tmp_path):
    (tmp_path / "fp.py").write_text(FINGERPRINT)
    suite = suite_file(tmp_path, ["original", str(tmp_path / "fp.py")], orders=[("3", "5", "8")])
    out = tmp_path / "res"
    assert main(["run", "--suite", str(suite), "--out", str(out), "--local"]) == 0
    recs = {(r.label, r.target, r.sequence_step): r for r in iter_records(out)}
    steps = [recs[("fingerprint", t, k)] for k, t in enumerate(["3", "5", "8"])]
    original_sum = weight_sum(artifact_dir(out, recs[("original", "3", 0)].job_id))
    assert steps[0]["method_stats"]["start_sum"] == pytest.approx(original_sum)  # step 1 starts from Original
    for k in (1, 2):  # later steps start from the previous step's model, kept as its artifact
        kept = weight_sum(artifact_dir(out, steps[k - 1].job_id))
        assert kept != pytest.approx(original_sum)
        assert steps[k]["method_stats"]["start_sum"] == pytest.approx(kept)
    assert steps[2]["method_stats"]["remain_classes"] == [0, 1, 2, 4, 6, 7, 9]  # D_r leaves 3 and 5 out at the third step
    assert steps[2]["method_stats"]["forget_classes"] == [8]
    assert not any(c.startswith("UA-earlier") for c in steps[0].metrics)
    assert all(any(c.startswith("UA-earlier") for c in s.metrics) for s in steps[1:])
    assert recs[("fingerprint", "3", None)].metrics.keys() == recs[("original", "3", None)].metrics.keys()  # ordinary
    manifest = json.loads((artifact_dir(out, steps[1].job_id) / "manifest.json").read_text())
    assert manifest["sequence"] == ["3", "5", "8"] and manifest["job_id"] == steps[1].job_id

    # resume: a later step's record gone, its predecessor's model kept -> only that step runs again
    (out / "records" / f"{steps[2].job_id}.json").unlink()
    before = {p.name: p.stat().st_mtime_ns for p in (out / "records").glob("*.json")}
    assert main(["run", "--suite", str(suite), "--out", str(out), "--local"]) == 0
    after = {p.name: p.stat().st_mtime_ns for p in (out / "records").glob("*.json")}
    assert {n for n in after if before.get(n) != after[n]} == {f"{steps[2].job_id}.json"}
    # the predecessor's model gone too -> that step runs again first (from its own kept predecessor)
    (out / "records" / f"{steps[2].job_id}.json").unlink()
    shutil.rmtree(artifact_dir(out, steps[1].job_id))
    before = after
    assert main(["run", "--suite", str(suite), "--out", str(out), "--local"]) == 0
    after = {p.name: p.stat().st_mtime_ns for p in (out / "records").glob("*.json")}
    assert {n for n in after if before.get(n) != after[n]} == {f"{steps[1].job_id}.json", f"{steps[2].job_id}.json"}


def test_a_step_whose_predecessor_failed_fails_with_that_cause(tmp_path):
    (tmp_path / "crash.py").write_text(CRASH)
    suite = suite_file(tmp_path, [str(tmp_path / "crash.py")], orders=[("3", "5")])
    out = tmp_path / "res"
    assert main(["run", "--suite", str(suite), "--out", str(out), "--local"]) == 1
    step2 = next(r for r in iter_records(out) if r.sequence_step == 1)
    assert step2.status == "failed" and "previous step's model" in step2.error and "missing" in step2.error


@pytest.mark.slow
def test_ray_runs_a_chain_in_order_and_passes_a_failure_on(tmp_path):
    (tmp_path / "fp.py").write_text(FINGERPRINT)
    (tmp_path / "crash.py").write_text(CRASH)
    suite = suite_file(tmp_path, [str(tmp_path / "fp.py"), str(tmp_path / "crash.py")], orders=[("3", "5", "8")], targets=("0",))
    out = tmp_path / "res"
    assert main(["run", "--suite", str(suite), "--out", str(out), "--cpus-per-job", "1"]) == 1
    recs = {(r.label, r.sequence_step): r for r in iter_records(out) if r.sequence}
    for k in (1, 2):
        assert recs[("fingerprint", k)]["method_stats"]["start_sum"] == pytest.approx(
            weight_sum(artifact_dir(out, recs[("fingerprint", k - 1)].job_id)))
    assert recs[("crash", 0)].status == "failed"
    for k in (1, 2):
        assert recs[("crash", k)].status == "failed" and "its previous step" in recs[("crash", k)].error
