"""The mini world tells known-good from known-bad: a small real run of `validate`'s methods, and
its checks on hand-made records (including the wrong verdicts they must catch)."""
import argparse

from bench.runner.records import iter_records
from bench.runner.validate import DESTRUCTIVE_LABEL, checks, validation_suite

DIGITS = "mini-digits-class"
SMALL = {"forget_samples": 6, "remain_samples_per_class": 2, "sample_steps": 4}


def test_validate_on_a_small_real_run(tmp_path):
    import yaml

    from bench.runner.evaluator import run_suite

    out = tmp_path / "res"
    suite = validation_suite({DIGITS: ["0"]}, retrain=False, max_steps=2, options={DIGITS: SMALL})
    path = tmp_path / "validate.yaml"
    path.write_text(yaml.safe_dump(suite))
    args = argparse.Namespace(tasks=None, targets=None, seeds=None, out=str(out), local=True, fast_paths=None)
    run_suite(str(path), args)
    results = checks(list(iter_records(out)))
    assert {c.name for c in results} == {"original-recognised", "destructive-last", "destructive-no-win", "finetune-barely-forgets"}
    assert all(c.passed for c in results), "\n".join(c.line() for c in results)
    assert sum(c.name == "destructive-last" for c in results) == 2  # one per keep column: RA and FID


def _rec(label, ua, ra, fid, target="0"):
    return {"job_id": f"{label}-{target}", "task": DIGITS, "task_kind": "class", "label": label, "method": label,
            "setting_hash": (label * 16)[:16], "target": target, "seed": 0, "status": "ok",
            "metrics": {"UA (c)": ua, "RA (c)": ra, "FID (f)": fid}, "directions": {"UA (c)": "↑", "RA (c)": "↑", "FID (f)": "↓"}}


def _verdicts(recs):
    return {(c.name, c.detail.split(":")[0] if c.name == "destructive-last" else ""): c.passed for c in checks(recs)}


def test_checks_pass_on_a_sane_world_and_catch_each_broken_one():
    good = [_rec("original", 0.02, 0.95, 10), _rec("finetune", 0.05, 0.96, 11), _rec(DESTRUCTIVE_LABEL, 0.9, 0.1, 300),
            _rec("retrain", 0.97, 0.93, 12)]
    assert all(_verdicts(good).values())
    # a judge that cannot recognise the target even in Original's samples
    assert not _verdicts([_rec("original", 0.6, 0.95, 10), *good[1:]])[("original-recognised", "")]
    # a world where re-initialising keeps RA (the metric does not measure keeping)
    v = _verdicts([good[0], good[1], _rec(DESTRUCTIVE_LABEL, 0.9, 0.97, 300), good[3]])
    assert not v[("destructive-last", "RA (c)")] and not v[("destructive-no-win", "")] and v[("destructive-last", "FID (f)")]
    # Finetune that "forgets": the task's forgetting is not about the target
    assert not _verdicts([good[0], _rec("finetune", 0.6, 0.96, 11), *good[2:]])[("finetune-barely-forgets", "")]
    # Retrain that does not forget
    assert not _verdicts([*good[:3], _rec("retrain", 0.1, 0.93, 12)])[("retrain-forgets-keeps", "")]


def test_missing_rows_fail_rather_than_pass():
    (c,) = checks([_rec("original", 0.02, 0.95, 10)])
    assert not c.passed and "finetune" in c.detail


def test_cli_has_validate(capsys):
    from bench.cli import build_parser

    args = build_parser().parse_args(["validate", "--max-steps", "2", "--tasks", DIGITS])
    assert args.command == "validate" and args.out == "results-validate" and not args.retrain
