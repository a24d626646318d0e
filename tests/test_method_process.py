"""Method code runs in a child process the harness owns (bench/runner/method_process.py).

Each hostile plug-in under tests/hostile/ is run the way every job runs a method; the harness must
come back within the limit plus a short grace, name the cause in one line, and leave no process of
the plug-in behind.
"""
import os
import shutil
import time
from pathlib import Path

import psutil
import pytest

from bench.core.errors import PluginError
from bench.runner.method_process import MethodProcessError, describe_exception, exit_cause
from bench.runner.plugins import load_submission
from bench.runner.submit import smoke_test
from tests.helpers import run_hostile

HOSTILE = Path(__file__).resolve().parent / "hostile"


def smoke(name: str, timeout_s: float = 60.0) -> dict:
    ref = str(HOSTILE / f"{name}.py")
    return smoke_test(load_submission(ref), ref, timeout_s=timeout_s)


def no_new_processes(before: set[int]) -> bool:
    """Nothing runs that did not before the call, but the runner's fork server (which runs no method)."""
    from bench.runner.method_process import method_runner

    now = {p.pid for p in psutil.Process().children(recursive=True) if p.status() != psutil.STATUS_ZOMBIE}
    return not (now - before - {method_runner().server_pid})


def children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


@pytest.mark.parametrize("name, cause", [
    ("segfault", "killed by signal 11 (SIGSEGV)"),
    ("exit0", "exited with code 0 before returning a result"),
    ("sysexit", "raised SystemExit(3)"),
    ("interrupt", "raised KeyboardInterrupt"),
])
def test_a_crashing_method_is_one_line_in_the_harness_which_goes_on(name, cause):
    before = children()
    with pytest.raises(PluginError) as err:
        smoke(name)
    message = str(err.value)
    assert message.endswith(cause) and "\n" not in message, message
    assert no_new_processes(before)


def test_a_method_stuck_in_one_c_call_is_ended_at_its_limit():
    before = children()
    t0 = time.monotonic()
    with pytest.raises(PluginError, match=r"timeout after 8 s \(a hung method"):
        smoke("stuck", timeout_s=8)
    assert time.monotonic() - t0 < 8 + 10  # the limit plus a short grace (the child's start-up is inside the limit)
    assert no_new_processes(before)


def test_leftover_threads_and_detached_processes_do_not_outlive_the_job(tmp_path, monkeypatch):
    before = children()
    assert smoke("thread") == {"steps": 1, "optimizer_steps": 1}  # it unlearned; its thread died with its process
    assert no_new_processes(before)
    monkeypatch.setenv("HOSTILE_PID_FILE", "vandal.pid")  # in its own directory (it may write nowhere else)
    got = run_hostile("detach")
    assert got.steps == 1 and got.optimizer_steps == 1
    pid = got.stats["vandal"]
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # the subreaper ended it
    assert no_new_processes(before)


def test_the_method_process_never_learns_where_results_go_and_writes_only_its_own_directory(tmp_path, monkeypatch):
    """Its working directory is a fresh temporary one, not the caller's (and not --out); it is not
    told where the record key lives; where the kernel has Landlock it cannot write outside its directory."""
    from bench.runner.method_process import method_runner
    from bench.runner.plan import JobSpec
    from bench.runner.plugins import read_method_source
    from bench.runner.sandbox import landlock_abi
    from bench.runner.unlearn_stage import UnlearnRequest

    probe = tmp_path / "probe.py"
    probe.write_text((HOSTILE / "thread.py").read_text().replace("hostile-thread", "probe-cwd").replace(
        "threading.Thread(target=time.sleep, args=(10**6,), daemon=False).start()",
        "return probe(__import__('os'))") + PROBE)
    monkeypatch.setenv("PROBE_TARGET", str(tmp_path / "planted.json"))
    monkeypatch.chdir(tmp_path)
    spec = JobSpec("t", "mini-digits-class", {"forget_samples": 4, "remain_samples_per_class": 2, "sample_steps": 2}, "0",
                   str(probe), "probe-cwd", {}, 0, {"max_steps": 2}, 60)
    got = method_runner().unlearn(UnlearnRequest(spec, {str(probe): read_method_source(str(probe))}, "cpu", 1), 60)
    shutil.rmtree(os.path.dirname(got.weights), ignore_errors=True)
    cwd = got.stats["cwd"]
    assert "unlearn-bench-method-" in cwd and not Path(cwd).exists()  # its directory is gone with the job
    assert got.stats["tmp"] == cwd and got.stats["state"] == "absent" and got.stats["own"] == "written"
    assert os.getcwd() == str(tmp_path)
    if landlock_abi() > 0:
        assert got.confinement["writes"].startswith("landlock ABI") and got.stats["outside"].startswith("PermissionError")
        assert not (tmp_path / "planted.json").exists()
    else:
        assert got.confinement["writes"].startswith("none:")


PROBE = """

def probe(os):
    import tempfile
    out = {"cwd": os.getcwd(), "tmp": tempfile.gettempdir(), "state": os.environ.get("UNLEARN_BENCH_STATE", "absent")}
    open("own.txt", "w").write("x")
    out["own"] = "written"
    try:
        open(os.environ["PROBE_TARGET"], "w").write("{}")
        out["outside"] = "written"
    except OSError as exc:
        out["outside"] = type(exc).__name__
    return out
"""


def test_causes_read_as_one_line():
    assert describe_exception(SystemExit(3)) == "raised SystemExit(3)"
    assert describe_exception(SystemExit()) == "raised SystemExit()"
    assert describe_exception(KeyboardInterrupt()) == "raised KeyboardInterrupt"
    assert describe_exception(ValueError("a\nb")) == "ValueError: a b"
    assert exit_cause(-9) == "killed by signal 9 (SIGKILL)" and exit_cause(3) == "exited with code 3 before returning a result"
    assert "before returning a result" in exit_cause(None)
    assert isinstance(MethodProcessError("x"), Exception)


def test_a_plugin_that_patches_the_judge_and_edits_the_original_is_judged_like_the_no_op_it_is(tmp_path):
    """Evaluation runs in a process that never imported the plug-in, against an Original it built itself."""
    from bench.cli import main
    from bench.runner.records import iter_records
    from tests.helpers import write_suite

    cheat = str(HOSTILE / "patch_judge.py")
    out = tmp_path / "res"
    assert main(["run", "--suite", str(write_suite(tmp_path / "s.yaml", ["original", cheat])), "--out", str(out), "--local"]) == 0
    recs = {r.label: r for r in iter_records(out)}
    assert recs["hostile-patch-judge"].ok and recs["hostile-patch-judge"].metrics == recs["original"].metrics  # not UA 1.000


def test_submit_of_a_crashing_plugin_fails_with_the_cause_and_leaves_records_alone(tmp_path, capsys):
    from bench.cli import main
    from tests.helpers import write_suite

    suite = write_suite(tmp_path / "s.yaml", ["original"])
    out = tmp_path / "res"
    assert main(["run", "--suite", str(suite), "--out", str(out), "--local"]) == 0
    before = {p.name: p.read_bytes() for p in (out / "records").iterdir()}
    capsys.readouterr()
    for name, cause in (("segfault", "killed by signal 11 (SIGSEGV)"), ("exit0", "exited with code 0 before returning a result")):
        assert main(["submit", str(HOSTILE / f"{name}.py"), "--suite", str(suite), "--out", str(out), "--local"]) == 2
        last = capsys.readouterr().err.strip().splitlines()[-1]
        assert last.startswith("unlearn-bench: error: method 'hostile-") and last.endswith(cause), last
    assert {p.name: p.read_bytes() for p in (out / "records").iterdir()} == before


def test_on_ray_a_crashed_method_is_a_failed_record_with_its_cause_and_no_method_joins_the_cluster(tmp_path, monkeypatch):
    """The measured attack (tests/hostile/cluster_join.py): a fresh interpreter finds the run's own Ray
    cluster as anyone can and, once connected, runs a task in an unconfined Ray worker that writes a
    file and reads the record key. Confined, it reaches no port at all; unconfined it joins (measured)."""
    import json

    from bench.cli import main
    from bench.runner.records import iter_records
    from bench.runner.sandbox import landlock_abi, unguarded
    from tests.helpers import write_suite

    monkeypatch.setenv("HOSTILE_RAY", "1")
    monkeypatch.setenv("HOSTILE_MARK", str(tmp_path / "joined"))
    monkeypatch.setenv("HOSTILE_FORGE_ROOT", str(tmp_path))
    out = tmp_path / "res"
    refs = [str(HOSTILE / "segfault.py"), str(HOSTILE / "sysexit.py"), str(HOSTILE / "cluster_join.py"), "original"]
    assert main(["run", "--suite", str(write_suite(tmp_path / "o.yaml", ["original"])), "--out", str(out), "--local"]) == 0
    before = {p.name: p.read_bytes() for p in (out / "records").iterdir()}  # Original's record and its manifest
    main(["run", "--suite", str(write_suite(tmp_path / "s.yaml", refs)), "--out", str(out)])
    (name, data), = [(k, v) for k, v in before.items() if k.endswith(".json")]
    manifest = (out / "records" / ".vouched.jsonl").read_bytes()
    assert (out / "records" / name).read_bytes() == data  # unconfined, its UA is set to 0 and vouched for with the key
    assert manifest.startswith(before[".vouched.jsonl"]) and name.encode() not in manifest[len(before[".vouched.jsonl"]):]
    recs = {r.label: r for r in iter_records(out)}
    assert {k: r.error for k, r in recs.items()} == {"hostile-segfault": "killed by signal 11 (SIGSEGV)", "hostile-sysexit": "raised SystemExit(3)",
                                                     "hostile-cluster-join": None, "original": None}
    if landlock_abi() >= 4:
        seen = json.loads(recs["hostile-cluster-join"]["method_stats"]["outcome"])
        assert not (tmp_path / "joined").exists() and not seen["gcs"].startswith("joined"), seen
        assert not [a for a, v in seen["tcp"].items() if v == "connected"], seen
        assert all(unguarded(r.get("method_confinement")) == [] for r in recs.values())  # failed records say it too


def test_a_submitted_file_is_never_imported_by_the_driver(tmp_path, capsys):
    """Its import-time code (which patches the judge and the score) runs only in method processes:
    the --local driver, which evaluates every job, plans, runs and ranks it without executing it."""
    import sys

    import leaderboard.score
    from bench.cli import main
    from bench.runner.records import iter_records
    from tests.helpers import write_suite

    score_fn = leaderboard.score.score
    cheat = str(HOSTILE / "import_patch.py")
    out = tmp_path / "res"
    assert main(["run", "--suite", str(write_suite(tmp_path / "s.yaml", ["original", cheat])), "--out", str(out), "--local"]) == 0
    recs = {r.label: r for r in iter_records(out)}
    assert recs["hostile-import-patch"].ok and recs["hostile-import-patch"].metrics == recs["original"].metrics
    assert leaderboard.score.score is score_fn and "HOSTILE_IMPORTED_IN" not in os.environ
    assert not [m for m in list(sys.modules.values()) if getattr(m, "__file__", None) == cheat]
    assert "| hostile-import-patch | 1 | 0.000" in (out / "LEADERBOARD.md").read_text()  # scored like the no-op it is

    capsys.readouterr()  # a file that crashes on import: submit says so in one line, and goes on living
    assert main(["submit", str(HOSTILE / "import_segfault.py"), "--suite", str(tmp_path / "s.yaml"), "--out", str(out), "--local"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last == "unlearn-bench: error: import_segfault.py failed to load in a method process: killed by signal 11 (SIGSEGV)", last


def test_the_fork_server_never_touches_cuda_so_its_children_can():
    """A child forked after its parent initialised CUDA, or only asked the CUDA runtime for its devices (diffusers
    does when imported), cannot use the GPU. So the fork server keeps off CUDA, on every machine: it reports CUDA
    uninitialised, and a fresh child of it is not in torch's 'bad fork' state."""
    from bench.runner.method_process import ForkServerProbe, method_runner

    runner = method_runner()
    state = runner.server_state()
    assert state["pid"] == runner.server_pid
    assert state["cuda_initialized"] is False
    child = runner.call(ForkServerProbe(), 60)
    assert child["pid"] != state["pid"]
    assert child == {**child, "cuda_in_bad_fork": False, "cuda_initialized": False}
    assert runner.server_state()["cuda_initialized"] is False  # still, after a fork
