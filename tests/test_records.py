import json

from bench.records import iter_records, record_path, write_record


def test_atomic_write_and_read(tmp_path):
    rec = {"job_id": "a__b", "status": "ok", "metrics": {"x": 1.0}}
    p = write_record(tmp_path, rec)
    assert p == record_path(tmp_path, "a__b")
    assert json.loads(p.read_text()) == rec
    assert not list(p.parent.glob(".tmp-*"))
    # a half-written temp file and a corrupt record are ignored, not fatal
    (p.parent / ".tmp-x.json").write_text("{")
    (p.parent / "broken.json").write_text("{not json")
    assert [r["job_id"] for r in iter_records(tmp_path)] == ["a__b"]


def test_overwrite_keeps_one_record(tmp_path):
    write_record(tmp_path, {"job_id": "j", "status": "failed"})
    write_record(tmp_path, {"job_id": "j", "status": "ok"})
    assert [r["status"] for r in iter_records(tmp_path)] == ["ok"]
