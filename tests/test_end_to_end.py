"""The whole flow on the mini digits task: plan -> (Ray) jobs -> records -> leaderboard."""
import json

from bench.cli import main
from bench.runner.records import iter_records
from tests.helpers import write_suite

CRASHING_METHOD = '''
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
        os._exit(3)  # its process dies mid-job (the method's own: the worker goes on)
'''

NAN_METHOD = '''
from dataclasses import dataclass
import torch
from bench import Method


@dataclass
class HP:
    pass


class Nan(Method):
    name = "nan-loss"
    HParams = HP

    def unlearn(self, model, forget, remain, budget, ctx):
        ctx.step(torch.tensor(float("nan")))
'''


def test_local_run_writes_records_and_leaderboard(tmp_path, capsys):
    suite = write_suite(tmp_path / "s.yaml", ["original", "graddiff"])
    out = tmp_path / "res"
    assert main(["run", "--suite", str(suite), "--out", str(out), "--local"]) == 0
    recs = {r["label"]: r for r in iter_records(out)}
    assert set(recs) == {"original", "graddiff"}
    gd = recs["graddiff"]
    assert gd["status"] == "ok" and gd["cost"]["steps"] == 2
    assert gd["hparams_resolved"]["forget_truncation"] == "elementwise"
    assert set(gd["metrics"]) == {"UA (digit-cnn)", "RA (digit-cnn)", "FID (digit-cnn feats, n=36)",
                                  "FID-floor (digit-cnn feats, real forgotten digit)"}
    assert gd["metrics"]["FID-floor (digit-cnn feats, real forgotten digit)"] == recs["original"]["metrics"]["FID-floor (digit-cnn feats, real forgotten digit)"]
    for key in ("versions", "git", "seed", "setting_hash", "wall_seconds", "checkpoints", "hardware"):
        assert key in gd
    assert gd["cost"]["peak_host_mem_mb"] > 0
    timed = gd["cost"]["metric_seconds"]  # every metric timed by the harness, within the evaluation's time
    assert set(timed) == {"class-accuracy", "fid"} and sum(timed.values()) <= gd["cost"]["eval_seconds"] + 1e-3
    board = (out / "LEADERBOARD.md").read_text()
    assert "## mini-digits-class" in board and "*original* (ref)" in board and "graddiff" in board
    # resume: a second run skips finished jobs and does not touch their records
    before = {p.name: p.stat().st_mtime_ns for p in (out / "records").iterdir()}
    assert main(["run", "--suite", str(suite), "--out", str(out), "--local"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in (out / "records").iterdir()} == before
    assert "2 already done, 0 to run" in capsys.readouterr().err


def test_ray_run_survives_crashing_and_nan_jobs(tmp_path):
    (tmp_path / "crash.py").write_text(CRASHING_METHOD)
    (tmp_path / "nan.py").write_text(NAN_METHOD)
    suite = write_suite(tmp_path / "s.yaml", ["original", str(tmp_path / "crash.py"), str(tmp_path / "nan.py")])
    out = tmp_path / "res"
    code = main(["run", "--suite", str(suite), "--out", str(out)])
    assert code == 1  # some jobs failed
    recs = {r["label"]: r for r in iter_records(out)}
    assert recs["original"]["status"] == "ok"
    assert recs["crash"]["status"] == "failed" and recs["crash"]["failed_in"] == "method process"
    assert recs["crash"]["error"] == "exited with code 3 before returning a result"
    assert recs["nan-loss"]["status"] == "failed" and "non-finite loss nan at step 0" in recs["nan-loss"]["error"]
    board = (out / "LEADERBOARD.md").read_text()
    assert "Failed jobs (2)" in board


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["run", "--suite", "no-such-suite", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("unlearn-bench: error: unknown suite") and "\n" not in err
    assert main(["run", "--methods", "bogus", "--out", str(tmp_path)]) == 2
    assert "unknown method 'bogus'" in capsys.readouterr().err
    assert main(["leaderboard", "--results", str(tmp_path / "missing")]) == 2
    assert main(["pretrain", "nope"]) == 2
    assert "unknown pretrain recipe 'nope'" in capsys.readouterr().err


def test_missing_checkpoint_is_a_clear_failure(tmp_path):
    suite = write_suite(tmp_path / "s.yaml", ["original"], options={"checkpoint": str(tmp_path / "nowhere"), "forget_samples": 2})
    out = tmp_path / "res"
    assert main(["run", "--suite", str(suite), "--out", str(out), "--local"]) == 1
    (rec,) = iter_records(out)
    assert rec["status"] == "failed" and "unlearn-bench pretrain mini-digits" in rec["error"]


def test_list_commands(capsys):
    for what in ("methods", "tasks", "metrics", "suites"):
        assert main(["list", what]) == 0
    out = capsys.readouterr().out
    assert "graddiff" in out and "mini-digits-class" in out and "class-accuracy" in out and "mini" in out


def test_dry_run_loads_nothing(tmp_path, capsys):
    assert main(["run", "--dry-run", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "| mini-digits-class |" in out and "images to generate" in out
    assert not (tmp_path / "records").exists()


def test_leaderboard_formats(tmp_path, capsys):
    suite = write_suite(tmp_path / "s.yaml", ["original"])
    out = tmp_path / "res"
    main(["run", "--suite", str(suite), "--out", str(out), "--local"])
    capsys.readouterr()
    assert main(["leaderboard", "--results", str(out), "--format", "json", "--out", str(tmp_path / "lb.json")]) == 0
    rows = json.loads((tmp_path / "lb.json").read_text())
    assert rows[0]["label"] == "original"
