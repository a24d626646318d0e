"""The driver vouches for every record it writes; readers believe only those (bench/runner/voucher.py)."""
import json
import shutil

import pytest

from bench.cli import main
from bench.runner import voucher
from bench.runner.records import finished_ok, load_record, record_path, scan_records, write_record


def rec(job_id="a__b", status="ok", ua=0.5):
    return {"job_id": job_id, "status": status, "task": "mini-digits-class", "label": "original", "method": "original",
            "setting_hash": "0" * 16, "target": "0", "seed": 0, "metrics": {"UA (c)": ua}, "directions": {"UA (c)": "↑"}}


@pytest.fixture
def own_key(tmp_path, monkeypatch):
    """A key store of this test's own (so switching it is 'another machine')."""
    monkeypatch.setenv(voucher.STATE_ENV, str(tmp_path / "state"))
    voucher.forget_key()
    yield tmp_path / "state"
    voucher.forget_key()


def why(path):
    return load_record(path)[1]


def test_what_the_driver_wrote_is_believed_and_nothing_else(tmp_path, own_key):
    out = tmp_path / "res"
    path = write_record(out, rec())
    assert why(path) is None and finished_ok(out, "a__b")
    key_file = own_key / voucher.KEY_FILE
    assert key_file.stat().st_mode & 0o777 == 0o600 and out not in key_file.parents  # the key lives outside --out

    # altered: the same file, other content (a rewritten metric)
    data = json.loads(path.read_text())
    data["metrics"]["UA (c)"] = 1.0
    path.write_text(json.dumps(data))
    assert why(path).startswith("altered") and not finished_ok(out, "a__b")  # resume re-runs it

    # unknown: a well-formed record nobody vouched for
    planted = record_path(out, "planted")
    planted.write_text(json.dumps({**rec("planted"), "schema_version": 3}))
    assert why(planted).startswith("unknown: the driver never wrote this file")

    # forged: a manifest entry without this key's mac
    with open(out / "records" / voucher.MANIFEST, "a") as fh:
        fh.write(json.dumps({"file": "planted.json", "sha256": "0" * 64, "mac": "f" * 64}) + "\n")
    assert why(planted).startswith("forged")

    # re-written by the driver: believed again (the later entry supersedes the earlier)
    write_record(out, rec(ua=0.25))
    assert why(path) is None
    records, ignored = scan_records(out)
    assert [r.job_id for r in records] == ["a__b"] and records[0].metrics["UA (c)"] == 0.25
    assert [(f, w.split(":")[0]) for f, w in ignored] == [("records/planted.json", "forged")]


def test_an_entry_copied_into_another_directory_does_not_vouch_there(tmp_path, own_key):
    a, b = tmp_path / "a", tmp_path / "b"
    write_record(a, rec())
    write_record(b, rec("other"))
    shutil.copy(record_path(a, "a__b"), record_path(b, "a__b"))
    with open(b / "records" / voucher.MANIFEST, "a") as fh:  # with a's entry for it: the mac is a's directory key's
        fh.write((a / "records" / voucher.MANIFEST).read_text().splitlines()[1] + "\n")
    assert why(record_path(b, "a__b")).startswith("forged")


def test_records_vouched_with_another_key_are_foreign_unless_accepted(tmp_path, own_key, monkeypatch):
    out = tmp_path / "res"
    path = write_record(out, rec())
    monkeypatch.setenv(voucher.STATE_ENV, str(tmp_path / "another-machine"))
    voucher.forget_key()
    assert why(path).startswith("foreign key")
    assert load_record(path, accept_unvouched=True)[0] is not None
    monkeypatch.setenv(voucher.ACCEPT_ENV, "accept")
    assert why(path) is None


def test_a_new_manifest_replaces_a_foreign_one_and_the_old_records_rerun(tmp_path, own_key, monkeypatch):
    out = tmp_path / "res"
    write_record(out, rec("old"))
    monkeypatch.setenv(voucher.STATE_ENV, str(tmp_path / "another-machine"))
    voucher.forget_key()
    write_record(out, rec("new"))  # e.g. a copied results directory resumed here
    assert why(record_path(out, "new")) is None
    assert why(record_path(out, "old")).startswith("unknown")  # not vouched by this key: its job re-runs
    assert list((out / "records").glob(voucher.MANIFEST + ".replaced-*"))  # the other machine's manifest is kept


def test_the_leaderboard_lists_ignored_files_and_counts_only_vouched_ones(tmp_path, own_key):
    out = tmp_path / "res"
    for label, ua in (("original", 0.0), ("m", 0.8)):
        for t in ("0", "5"):
            r = {**rec(f"{label}-{t}", ua=ua), "label": label, "method": label, "target": t,
                 "metrics": {"UA (c)": ua, "RA (c)": 0.9}, "directions": {"UA (c)": "↑", "RA (c)": "↑"}, "task_kind": "class"}
            write_record(out, r)
    assert main(["leaderboard", "--results", str(out)]) == 0
    before = (out / "LEADERBOARD.md").read_text()
    for t in ("0", "5"):  # a vandal rewrites Original's records so that the row looks better
        p = record_path(out, f"original-{t}")
        data = json.loads(p.read_text())
        data["metrics"]["RA (c)"] = 0.1
        p.write_text(json.dumps(data))
    assert main(["leaderboard", "--results", str(out)]) == 0
    after = (out / "LEADERBOARD.md").read_text()
    assert "## Ignored record files (2)" in after and "`records/original-0.json`: altered" in after
    assert "0.100" not in after and before.split("## Ignored")[0] != after.split("## Ignored")[0]  # Original's row is gone, not forged


def _rows(out, labels=("original", "graddiff")) -> dict:
    """The numbers of these rows on the leaderboard (its JSON view)."""
    assert main(["leaderboard", "--results", str(out), "--format", "json", "--out", str(out / "lb.json")]) == 0
    rows = json.loads((out / "lb.json").read_text())
    return {r["row"]: {k: v for k, v in r.items() if (k.endswith(("mean", "std")) and not k.startswith(("time", "peak mem"))) or k == "n"}
            for r in rows if r["row"] in labels}  # measurements, not costs (a re-run job takes another time)


@pytest.mark.parametrize("sandbox", ["on", "off"])
def test_a_detached_process_that_rewrites_records_changes_no_row(tmp_path, monkeypatch, sandbox):
    """The hostile plug-in leaves a process behind that sets every record's metrics to 0 while it lives.
    Sandboxed (Landlock), it cannot write them; unsandboxed it can, and the voucher refuses what it
    wrote: no forged number is ranked, and a resume restores the records it spoiled."""
    from bench.runner.sandbox import OFF_ENV, landlock_abi
    from tests.helpers import HOSTILE_DIR, write_suite

    if sandbox == "on" and landlock_abi() <= 0:
        pytest.skip("this kernel has no Landlock")
    monkeypatch.setenv(OFF_ENV, "on" if sandbox == "on" else "off")
    out = tmp_path / "res"
    suite = write_suite(tmp_path / "s.yaml", ["original", "graddiff"])
    assert main(["run", "--suite", str(suite), "--out", str(out), "--local"]) == 0
    before = _rows(out)
    assert set(before) == {"original", "graddiff"}
    monkeypatch.setenv("HOSTILE_RECORDS", str(out / "records"))
    monkeypatch.setenv("HOSTILE_PID_FILE", str(tmp_path / "vandal.pid") if sandbox == "off" else "/dev/null")
    accept = ["--accept-unconfined"] if sandbox == "off" else []  # unconfined: submit refuses unless told to accept it
    main(["submit", str(HOSTILE_DIR / "detach.py"), "--suite", str(suite), "--out", str(out), "--local", *accept])
    md = (out / "LEADERBOARD.md").read_text()
    assert "hostile-detach" in md
    if sandbox == "on":
        assert _rows(out) == before and "## Ignored record files" not in md
        return
    assert "`: altered: its content is not what the driver wrote" in md  # what it rewrote is listed, not ranked
    assert all(_rows(out).get(k, v) == v for k, v in before.items())  # a row is there as it was, or not there
    monkeypatch.delenv("HOSTILE_RECORDS")
    assert main(["run", "--suite", str(suite), "--out", str(out), "--local"]) == 0  # resume: spoiled records re-run
    assert _rows(out) == before
