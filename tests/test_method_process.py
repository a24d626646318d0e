"""Method code runs in a child process the harness owns (bench/runner/method_process.py).

Each hostile plug-in under tests/hostile/ is run the way every job runs a method; the harness must
come back within the limit plus a short grace, name the cause in one line, and leave no process of
the plug-in behind.
"""
import os
import time
from pathlib import Path

import psutil
import pytest

from bench.core.errors import PluginError
from bench.runner.method_process import MethodProcessError, describe_exception, exit_cause
from bench.runner.plugins import load_submission
from bench.runner.submit import smoke_test

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
    pid_file = tmp_path / "vandal.pid"
    monkeypatch.setenv("HOSTILE_PID_FILE", str(pid_file))
    assert smoke("detach") == {"steps": 1, "optimizer_steps": 1}
    pid = int(pid_file.read_text())
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE  # the subreaper ended it
    assert no_new_processes(before)


def test_the_method_process_never_learns_where_results_go(tmp_path, monkeypatch):
    """Its working directory is a fresh temporary one, not the caller's (and not --out)."""
    probe = tmp_path / "probe.py"
    probe.write_text((HOSTILE / "thread.py").read_text().replace("hostile-thread", "probe-cwd").replace(
        "threading.Thread(target=time.sleep, args=(10**6,), daemon=False).start()",
        "open(__import__('os').environ['PROBE_OUT'], 'w').write(__import__('os').getcwd())"))
    monkeypatch.setenv("PROBE_OUT", str(tmp_path / "cwd.txt"))
    monkeypatch.chdir(tmp_path)
    smoke_test(load_submission(str(probe)), str(probe))
    cwd = (tmp_path / "cwd.txt").read_text()
    assert "unlearn-bench-method-" in cwd and not Path(cwd).exists()  # its directory is gone with the job
    assert os.getcwd() == str(tmp_path)


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


def test_on_ray_a_crashed_method_is_a_failed_record_with_its_cause(tmp_path):
    from bench.cli import main
    from bench.runner.records import iter_records
    from tests.helpers import write_suite

    out = tmp_path / "res"
    refs = [str(HOSTILE / "segfault.py"), str(HOSTILE / "sysexit.py"), "original"]
    main(["run", "--suite", str(write_suite(tmp_path / "s.yaml", refs)), "--out", str(out)])
    errors = {r.label: r.error for r in iter_records(out)}
    assert errors == {"hostile-segfault": "killed by signal 11 (SIGSEGV)", "hostile-sysexit": "raised SystemExit(3)", "original": None}
