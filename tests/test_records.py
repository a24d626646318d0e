import json
import os
import stat

from bench.cli import main
from bench.runner.records import finished_ok, iter_records, record_path, write_record


def rec(job_id="a__b", status="ok", **extra):
    return {"job_id": job_id, "status": status, "task": "mini-digits-class", "label": "original", "method": "original",
            "setting_hash": "0" * 16, "target": "0", "seed": 0, "metrics": {"x": 1.0}, **extra}


def test_atomic_write_and_read(tmp_path):
    r = rec()
    p = write_record(tmp_path, r)
    assert p == record_path(tmp_path, "a__b")
    assert json.loads(p.read_text()) == r
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
