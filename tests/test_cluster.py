"""A real `ray start --head` cluster, started from another directory than the driver's.

The driver owns the results: a relative `--out` and a relative method file mean the driver's
directory, every record lands there (none in the head's start directory), resume sees them, and
the leaderboard is built from them. Without `--address` the run starts its own local instance
even when RAY_ADDRESS names a running cluster.
"""
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.cli import main
from bench.runner.records import iter_records
from tests.helpers import write_suite

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]

STEP_METHOD = '''
from dataclasses import dataclass
import torch
from bench import Method, simple_loss


@dataclass
class HP:
    lr: float = 1e-4
    steps: int = 5


class Nudge(Method):
    name = "nudge"
    HParams = HP

    def unlearn(self, model, forget, remain, budget, ctx):
        opt = torch.optim.SGD(model.denoiser.parameters(), lr=self.hparams.lr)
        batches = remain.batches(8, ctx.generator)
        for _ in range(budget.steps(self.hparams.steps)):
            r = next(batches)
            loss = simple_loss(model, r.x, model.condition(r.keys), ctx.generator)
            opt.zero_grad()
            loss.backward()
            opt.step()
            ctx.step(loss)
'''


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory):
    """One-node cluster, 1 CPU, started (like a user would) in its own directory and session."""
    head_dir = tmp_path_factory.mktemp("head-cwd")
    temp_dir = Path(f"/tmp/ubh-{os.getpid()}")  # short: Ray's socket paths have a length limit
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), "RAY_AUTH_MODE": "disabled"}
    env.pop("RAY_ADDRESS", None)
    log = head_dir.parent / "head.log"
    ray_exe = str(Path(sys.executable).with_name("ray"))
    with open(log, "w") as fh:
        proc = subprocess.Popen(
            [ray_exe, "start", "--head", "--block", f"--port={port}", "--num-cpus=1", "--include-dashboard=false",
             f"--temp-dir={temp_dir}", "--disable-usage-stats"],
            cwd=head_dir, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.time() + 120
        while "Ray runtime started" not in log.read_text():
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"ray start --head did not come up:\n{log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}", head_dir
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # only the session this fixture started
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def test_records_land_in_the_drivers_out_on_a_cluster(ray_head, tmp_path, monkeypatch, capsys):
    address, head_dir = ray_head
    driver_dir = tmp_path / "driver"
    driver_dir.mkdir()
    monkeypatch.chdir(driver_dir)
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    Path("nudge.py").write_text(STEP_METHOD)
    write_suite(Path("suite.yaml"), ["original", "nudge.py"])  # a relative method path
    assert main(["run", "--suite", "suite.yaml", "--out", "res", "--address", address]) == 0
    recs = {r["label"]: r for r in iter_records(driver_dir / "res")}
    assert set(recs) == {"original", "nudge"} and all(r["status"] == "ok" for r in recs.values())
    assert recs["nudge"]["cost"]["steps"] == 2 and recs["nudge"]["method_source"]["path"] == str(driver_dir / "nudge.py")
    assert not list(head_dir.rglob("*.json"))  # nothing written where the head was started
    board = (driver_dir / "res" / "LEADERBOARD.md").read_text()
    assert "*original* (ref)" in board and "nudge" in board
    capsys.readouterr()
    assert main(["run", "--suite", "suite.yaml", "--out", "res", "--address", address]) == 0  # resume
    assert "2 already done, 0 to run" in capsys.readouterr().err


def test_no_address_starts_its_own_instance_beside_a_running_cluster(ray_head, tmp_path, monkeypatch):
    address, _ = ray_head
    monkeypatch.setenv("RAY_ADDRESS", address)  # what `ray start` leaves for ray.init() to find
    suite = write_suite(tmp_path / "s.yaml", ["original"])
    assert main(["run", "--suite", str(suite), "--out", str(tmp_path / "res")]) == 0
    assert [r["status"] for r in iter_records(tmp_path / "res")] == ["ok"]
