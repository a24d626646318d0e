"""The results directory: checked before any job, locked against a second run, files readable by the group."""
import os
import stat

import pytest

from bench.cli import main
from bench.runner.evaluator import write_leaderboard
from bench.runner.outdir import results_lock
from tests.helpers import write_suite


@pytest.fixture
def no_jobs(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("a job started")

    monkeypatch.setattr("bench.runner.evaluator.run_local", refuse)
    monkeypatch.setattr("bench.runner.evaluator.run_ray", refuse)


def test_unwritable_out_fails_before_any_job(tmp_path, capsys, no_jobs):
    suite = write_suite(tmp_path / "s.yaml", ["original"])
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["run", "--suite", str(suite), "--out", str(blocker / "res"), "--local"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("unlearn-bench: error: results directory") and "is not writable" in err


def test_second_run_on_the_same_out_is_refused(tmp_path, capsys, no_jobs):
    suite = write_suite(tmp_path / "s.yaml", ["original"])
    out = tmp_path / "res"
    with results_lock(out):
        assert main(["run", "--suite", str(suite), "--out", str(out), "--local"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"another unlearn-bench run (pid {os.getpid()}) is writing to {out}" in err
    with results_lock(out):  # released when the holder ends
        pass


def test_records_and_leaderboard_are_group_readable_and_replaced_atomically(tmp_path):
    old = os.umask(0o022)
    try:
        suite = write_suite(tmp_path / "s.yaml", ["original"])
        out = tmp_path / "res"
        assert main(["run", "--suite", str(suite), "--out", str(out), "--local"]) == 0
        (rec,) = (out / "records").glob("*.json")
        board = out / "LEADERBOARD.md"
        for path in (rec, board):
            assert stat.S_IMODE(path.stat().st_mode) == 0o644
        inode = board.stat().st_ino
        write_leaderboard(str(out), echo=False)
        assert board.stat().st_ino != inode  # a new file renamed over the old: readers never see half of one
        assert not [p for p in out.rglob(".tmp-*")]
    finally:
        os.umask(old)
