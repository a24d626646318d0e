"""benchmarks/run_cost.py: the per-task cost split adds up to each job's wall time."""
import importlib.util
from pathlib import Path

import pytest

from bench.core.record import parse_record
from tests.test_paired import _record

spec = importlib.util.spec_from_file_location("run_cost", Path(__file__).parents[1] / "benchmarks" / "run_cost.py")
run_cost = importlib.util.module_from_spec(spec)
spec.loader.exec_module(run_cost)


def _job(label, seed, unlearn, ev, sample, wall, status="ok"):
    rec = _record(label, "cross", seed, [0.0] * 16, [0.3] * 16)
    rec.update(status=status, wall_seconds=wall, cost={"unlearn_seconds": unlearn, "eval_seconds": ev, "eval_sample_seconds": sample})
    return parse_record(rec)


def test_the_split_is_unlearning_sampling_judging_and_the_rest():
    rows = run_cost.split([_job("a", 0, 10.0, 6.0, 4.0, 20.0), _job("b", 0, 2.0, 3.0, 1.0, 6.0),
                           _job("c", 0, 99.0, 99.0, 99.0, 999.0, status="failed")])  # a failed job is not a cost of the verdict
    r = rows["mini-shapes-concept"]
    assert r["jobs"] == 2 and r["wall"] == 26
    assert (r["unlearning"], r["sampling"], r["judging"], r["overhead"]) == (12, 5, pytest.approx(4), pytest.approx(5))
    assert r["unlearning"] + r["sampling"] + r["judging"] + r["overhead"] == pytest.approx(r["wall"])
