"""Per-job wall-clock limits: a hung method becomes `failed: timeout after N s`; submit's smoke run has one too."""
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cli import main
from bench.core.errors import ConfigError
from bench.runner.plan import load_suite, parse_suite, plan_jobs
from bench.runner.records import iter_records
from tests.helpers import write_suite

HANG = '''
import time
from dataclasses import dataclass
from bench import Method


@dataclass
class HP:
    pass


class Hang(Method):
    name = "hang"
    HParams = HP

    def unlearn(self, model, forget, remain, budget, ctx):
        while True:
            time.sleep(0.05)
'''

ROOT = Path(__file__).resolve().parents[1]


def test_default_limit_per_task_suite_option_and_cli_override(tmp_path):
    suite = load_suite(str(write_suite(tmp_path / "s.yaml", ["original"])))
    (job,) = plan_jobs(suite)
    assert job.timeout_s == 3600.0  # mini-digits-class's default
    suite.timeout_s = 120.0
    assert plan_jobs(suite)[0].timeout_s == 120.0
    assert plan_jobs(suite, timeout_s=5)[0].timeout_s == 5
    assert plan_jobs(suite)[0].setting_hash == job.setting_hash  # a limit changes no result
    raw = {"tasks": {"mini-digits-class": {"targets": ["0"]}}, "methods": ["original"], "timeout_s": -1}
    with pytest.raises(ConfigError, match="timeout_s must be a positive number of seconds"):
        parse_suite(raw)


def test_local_hung_job_times_out(tmp_path):
    (tmp_path / "hang.py").write_text(HANG)
    suite = write_suite(tmp_path / "s.yaml", [str(tmp_path / "hang.py")])
    out = tmp_path / "res"
    assert main(["run", "--suite", str(suite), "--out", str(out), "--local", "--timeout", "3"]) == 1
    (rec,) = iter_records(out)
    assert rec["status"] == "failed" and rec["error"] == "timeout after 3 s" and rec["wall_seconds"] < 30


@pytest.mark.slow
def test_ray_hung_job_times_out(tmp_path):
    (tmp_path / "hang.py").write_text(HANG)
    suite = write_suite(tmp_path / "s.yaml", [str(tmp_path / "hang.py")])
    out = tmp_path / "res"
    assert main(["run", "--suite", str(suite), "--out", str(out), "--timeout", "3"]) == 1
    (rec,) = iter_records(out)
    assert rec["status"] == "failed" and rec["error"] == "timeout after 3 s"


def test_watchdog_ends_a_process_whose_job_swallows_the_stop():
    code = (
        "import time\n"
        "from bench.runner.timeout import time_limit, worker_watchdog\n"
        "with time_limit(1), worker_watchdog(1):\n"
        "    while True:\n"
        "        try:\n"
        "            time.sleep(0.05)\n"
        "        except BaseException:\n"
        "            pass\n"
    )
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 124 and 10 <= time.monotonic() - t0 < 40  # limit 1 s + grace 10 s
    assert "ending the worker" in proc.stderr


def test_submit_smoke_run_has_a_limit(tmp_path, capsys):
    (tmp_path / "hang.py").write_text(HANG)
    assert main(["submit", str(tmp_path / "hang.py"), "--timeout", "2", "--out", str(tmp_path / "res")]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("unlearn-bench: error: method 'hang' smoke run") and "timeout after 2 s" in err
    assert not (tmp_path / "res").exists()
