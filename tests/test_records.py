import json
import pathlib
import re

import pytest

from bench.cli import main
from bench.core.log import show_on_stderr
from bench.core.record import SCHEMA_VERSION, RecordError, parse_record
from bench.runner.records import finished_ok, iter_records, record_path, write_record


def rec(job_id="a__b", status="ok", **extra):
    return {"job_id": job_id, "status": status, "task": "mini-digits-class", "label": "original", "method": "original",
            "setting_hash": "0" * 16, "target": "0", "seed": 0, "metrics": {"x": 1.0}, **extra}


def test_atomic_write_and_read(tmp_path):
    r = rec()
    p = write_record(tmp_path, r)
    assert p == record_path(tmp_path, "a__b")
    assert json.loads(p.read_text()) == {"schema_version": SCHEMA_VERSION, **r}
    assert not list(p.parent.glob(".tmp-*"))
    # a half-written temp file and a corrupt record are ignored, not fatal
    (p.parent / ".tmp-x.json").write_text("{")
    (p.parent / "broken.json").write_text("{not json")
    assert [r["job_id"] for r in iter_records(tmp_path)] == ["a__b"]


def test_overwrite_keeps_one_record(tmp_path):
    write_record(tmp_path, rec("j", "failed"))
    write_record(tmp_path, rec("j", "ok"))
    assert [r["status"] for r in iter_records(tmp_path)] == ["ok"]


BAD = {
    "latin1.json": b'{"job_id": "x\xe9"}',
    "list.json": b"[1, 2]",
    "partial.json": json.dumps({"job_id": "p", "status": "ok"}).encode(),
    "truncated.json": json.dumps(rec("t")).encode()[:40],
}


def test_unusable_records_are_skipped_with_a_warning_naming_each(tmp_path, capsys):
    show_on_stderr()  # as the command does: the runner's log lines on stderr
    write_record(tmp_path, rec())
    for name, data in BAD.items():
        (tmp_path / "records" / name).write_bytes(data)
    assert [r["job_id"] for r in iter_records(tmp_path)] == ["a__b"]
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == len(BAD) and all(line.startswith("unlearn-bench: warning: skipping record") for line in err)
    assert all(any(name in line for line in err) for name in BAD)
    assert main(["leaderboard", "--results", str(tmp_path)]) == 0  # the tools go on
    for name in BAD:  # resume treats an unusable record as not done
        assert not finished_ok(tmp_path, name[: -len(".json")])


def test_run_reruns_a_job_whose_record_is_unusable(tmp_path, capsys):
    from tests.helpers import write_suite

    suite = write_suite(tmp_path / "s.yaml", ["original"])
    out = tmp_path / "res"
    assert main(["run", "--suite", str(suite), "--out", str(out), "--local"]) == 0
    (path,) = (out / "records").glob("*.json")
    path.write_bytes(b"[1]")
    capsys.readouterr()
    assert main(["run", "--suite", str(suite), "--out", str(out), "--local"]) == 0
    err = capsys.readouterr().err
    assert "0 already done, 1 to run" in err and f"skipping record {path}" in err
    assert json.loads(path.read_text())["status"] == "ok"


# -- the one loader: typed records, older spellings, newer versions -----------------------------------
V1 = pathlib.Path(__file__).parent / "fixtures" / "records-v1"  # written by the suite before schema_version existed


def test_records_written_before_the_schema_version_still_load():
    recs = {r.job_id: r for r in (parse_record(json.loads(p.read_text())) for p in sorted(V1.glob("*.json")))}
    assert len(recs) == 4 and all(r.schema_version == 1 and r.ok for r in recs.values())
    rgd = recs["mini-digits-class__rgd__t0__s0__707dff1382"]
    assert rgd.task_kind == "class" and rgd.hparams_resolved["lr"] > 0 and rgd.cost.unlearn_seconds > 0
    assert set(rgd.metrics) == set(rgd.directions) and rgd.samples and rgd.samples["png"]
    assert rgd["method_stats"] == json.loads((V1 / f"{rgd.job_id}.json").read_text())["method_stats"]  # untyped fields by key


def test_the_leaderboard_reads_records_of_before_and_after(tmp_path):
    from leaderboard.build import build

    old = [json.loads(p.read_text()) for p in sorted(V1.glob("*.json"))]
    new = [{**r, "schema_version": SCHEMA_VERSION} for r in old]
    assert build(old, "csv") == build(new, "csv")


def test_older_spellings_are_normalised_in_the_loader():
    r = parse_record(rec(hparams={"lr": 1.0}, task_options={"a": 1}))
    assert r.hparams_resolved == {"lr": 1.0} and r.task_config == {"a": 1} and r.schema_version == 1
    r = parse_record(rec(hparams={"lr": 1.0}, hparams_resolved={"lr": 1.0, "steps": 2}, task_config={"b": 2}, task_options={"a": 1}))
    assert r.hparams_resolved == {"lr": 1.0, "steps": 2} and r.task_config == {"b": 2}


def test_malformed_or_newer_records_fail_in_the_loader_with_the_reason():
    for bad, why in ((rec(metrics=[1]), "'metrics' is not an object"), (rec(cost="x"), "'cost' is not an object"),
                     (rec(schema_version=SCHEMA_VERSION + 1), "newer than this unlearn-bench reads"), ([1], "not a record object"),
                     ({"job_id": "x"}, "missing key(s) status")):
        with pytest.raises(RecordError, match=re.escape(why)):
            parse_record(bad)


def test_an_ok_record_without_finite_metrics_is_unusable_and_its_job_reruns(tmp_path, capsys):
    show_on_stderr()
    cases = {"nan": rec("nan", metrics={"x": float("nan")}), "none": rec("none", metrics={}),
             "missing": rec("missing", metrics={"x": 1.0}, directions={"x": "↑", "y": "↓"}),
             "text": rec("text", metrics={"x": "1.0"})}
    for r in cases.values():
        write_record(tmp_path, r)
    write_record(tmp_path, rec("failed-nan", status="failed", metrics={"x": float("nan")}))  # a failed record may hold anything
    assert [r["job_id"] for r in iter_records(tmp_path)] == ["failed-nan"]
    err = capsys.readouterr().err
    assert err.count("an 'ok' record with") == 4 and "missing or non-finite 'y'" in err and "no metrics" in err
    assert not any(finished_ok(tmp_path, j) for j in cases)


def test_two_records_of_one_job_count_once_with_a_warning(tmp_path, capsys):
    show_on_stderr()
    write_record(tmp_path, rec("j", metrics={"x": 1.0}))
    write_record(tmp_path / "copy", rec("j", metrics={"x": 0.0}))  # the same job in a nested results tree
    assert [r.metrics for r in iter_records(tmp_path)] == [{"x": 1.0}]
    assert "a second record of job j (counted once" in capsys.readouterr().err


def test_a_job_whose_metric_comes_out_nan_fails_with_the_column_named(tmp_path, monkeypatch):
    """The evaluation runs in the harness process, so a patched metric here is what the job sees."""
    from bench.runner.job import run_job
    from bench.runner.plan import JobSpec
    from metrics.fid import FID
    from tests.helpers import FAST_DIGITS

    monkeypatch.setattr(FID, "compute", lambda self, inst, unlearned, original, ctx: {c: float("nan") for c in self.columns(inst)})
    spec = JobSpec("t", "mini-digits-class", FAST_DIGITS, "0", "original", "original", {}, 0, {"max_steps": 2})
    r = run_job(spec, tmp_path)
    assert r["status"] == "failed" and r["error"].startswith("metric column(s) 'FID (digit-cnn feats") and "non-finite" in r["error"]
