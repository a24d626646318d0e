"""A method process is contained (bench/runner/sandbox.py, bench/runner/memcap.py): no network or cluster,
no read of the harness's secrets, nothing left in /dev/shm, a memory cap with a named cause, and what applied
in every record. Each hostile plug-in under tests/hostile/ runs the way every job runs a method; each test
fails when its defence is taken away (UNLEARN_BENCH_METHOD_SANDBOX=off, UNLEARN_BENCH_METHOD_MEMORY=off).

"on" runs with every part this kernel allows (here: Landlock, namespaces, seccomp); "no-namespaces" with what
a machine that forbids unprivileged user namespaces gets (Landlock and seccomp only)."""
import json
import os
import socket
import sys
import uuid
from pathlib import Path

import pytest

from bench.runner import sandbox
from bench.runner.method_process import MethodProcessError, memory_cause
from tests.helpers import HOSTILE_DIR, run_hostile

linux_landlock = pytest.mark.skipif(sandbox.landlock_abi() < 4, reason="needs Linux with Landlock ABI >= 4")
MODES = ["on", sandbox.NO_NAMESPACES]


def outcome(got) -> dict:
    return json.loads(got.stats["outcome"])


def no_connection(listener: socket.socket) -> bool:
    listener.settimeout(0.2)
    try:
        listener.accept()[0].close()
        return False
    except (TimeoutError, socket.timeout):
        return True


@linux_landlock
@pytest.mark.parametrize("mode", MODES)
def test_a_fresh_interpreter_reaches_no_port_and_no_socket_outside(tmp_path, monkeypatch, mode):
    """The cluster join's first step: a process the method starts connects to a TCP port the harness's
    side listens on (as the GCS does), to a Unix socket outside its directory and to an abstract one."""
    monkeypatch.setenv(sandbox.OFF_ENV, mode)
    tcp = socket.create_server(("127.0.0.1", 0))
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(tmp_path / "harness.sock"))
    unix.listen()
    abstract_name = f"unlearn-bench-test-{uuid.uuid4().hex}"
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind("\0" + abstract_name)
    abstract.listen()
    monkeypatch.setenv("HOSTILE_TCP", f"127.0.0.1:{tcp.getsockname()[1]}")
    monkeypatch.setenv("HOSTILE_UNIX", str(tmp_path / "harness.sock"))
    monkeypatch.setenv("HOSTILE_ABSTRACT", abstract_name)
    try:
        got = run_hostile("cluster_join")
        seen = outcome(got)
        assert no_connection(tcp) and no_connection(abstract), seen
        assert all(v.startswith("PermissionError") for v in seen["tcp"].values()) and seen["abstract"] != "connected", seen
        assert got.confinement["network"].startswith("none") is False
        if mode == "on":  # a mount namespace masks the sockets outside; without one they stay reachable (the README says so)
            assert no_connection(unix) and seen["unix"] != "connected", seen
            assert got.confinement["network"].startswith("network namespace"), got.confinement
    finally:
        for s in (tcp, unix, abstract):
            s.close()


@linux_landlock
@pytest.mark.parametrize("mode", MODES)
def test_the_voucher_key_ray_token_session_and_results_are_unreadable(tmp_path, monkeypatch, mode):
    from bench.runner import voucher
    from bench.runner.records import write_record
    from tests.test_records import rec

    monkeypatch.setenv(sandbox.OFF_ENV, mode)
    key = voucher.state_dir() / voucher.KEY_FILE
    voucher.user_key()
    other = tmp_path / "earlier-results"  # a results directory of another run: known to the voucher once it vouched there
    write_record(other, rec("j", metrics={"x": 1.0}))
    this_run = tmp_path / "this-run"
    (this_run / "records").mkdir(parents=True)
    (this_run / "records" / "r.json").write_text("{}")
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("token")
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_ed25519").write_text("private key")
    ray_tmp = tmp_path / "raytmp"
    (ray_tmp / "ray" / "session_latest").mkdir(parents=True)
    (ray_tmp / "ray" / "session_latest" / "gcs_address").write_text("127.0.0.1:6379")
    public = tmp_path / "data.txt"
    public.write_text("data it may read")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("UNLEARN_BENCH_CACHE", os.environ.get("UNLEARN_BENCH_CACHE", os.path.expanduser("~/.cache/unlearn-bench")))
    monkeypatch.setenv("RAY_TMPDIR", str(ray_tmp))
    secrets = [key, key.parent, other / "records", home / ".ray" / "auth_token", home / ".ssh" / "id_ed25519",
               ray_tmp / "ray" / "session_latest" / "gcs_address", this_run / "records" / "r.json", this_run]
    monkeypatch.setenv("HOSTILE_PRIVATE_PATHS", os.pathsep.join(map(str, secrets)))
    monkeypatch.setenv("HOSTILE_PUBLIC", str(public))
    seen = outcome(run_hostile("read_secrets", private=[str(this_run)]))
    assert seen.pop(str(public)) == f"read {len('data it may read')} bytes"
    assert set(seen) == set(map(str, secrets)) and all(v in ("PermissionError", "FileNotFoundError") for v in seen.values()), seen
    assert "UNLEARN_BENCH_STATE" not in json.dumps(seen)


@linux_landlock
@pytest.mark.parametrize("mode", MODES)
def test_nothing_a_method_leaves_in_dev_shm_outlives_its_job(monkeypatch, mode):
    """Its DataLoader workers still pass tensors through /dev/shm; the file it leaves there is gone."""
    monkeypatch.setenv(sandbox.OFF_ENV, mode)
    name = f"unlearn-bench-hostile-{uuid.uuid4().hex}"
    monkeypatch.setenv("HOSTILE_SHM_NAME", name)
    got = run_hostile("shm_leftover")
    assert got.stats["loaded"] == 64
    assert not os.path.exists(f"/dev/shm/{name}") and not os.path.exists(f"/dev/mqueue/{name}")
    assert got.confinement["leftovers"].startswith("private" if mode == "on" else "the harness removes")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_DATA counts mappings on Linux")
def test_a_memory_hog_fails_with_the_cap_as_its_cause(monkeypatch):
    """Capped at 1 GiB, a method that allocates 3 GiB fails with "out of memory (limit 1 GiB)", not with
    the kernel's SIGKILL (and without a cap it would have its 3 GiB: the test fails)."""
    monkeypatch.setenv("UNLEARN_BENCH_METHOD_MEMORY", "1")
    monkeypatch.setenv("HOSTILE_HOG_GIB", "3")
    with pytest.raises(MethodProcessError) as err:
        run_hostile("memory_hog")
    assert str(err.value) == "out of memory (limit 1 GiB)" and err.value.confinement["memory"].split(":")[0] in (
        "RLIMIT_DATA", "cgroup v2 memory.max 1 GiB (all its processes together)"), err.value.confinement


def test_out_of_memory_causes_read_as_one_line():
    import torch

    assert memory_cause(MemoryError(), 2**30) == "out of memory (limit 1 GiB)"
    host = RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory: you tried to allocate 4294967296 bytes.")
    assert memory_cause(host, 3 * 2**29) == "out of memory (limit 1.5 GiB)"
    cuda = torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity of 79.11 GiB of which"
                                  " 3.2 GiB is free. Including non-PyTorch memory, this process has 75.9 GiB memory in use.\nOf the allocated ...")
    assert memory_cause(cuda) == ("out of memory on the GPU: CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity"
                                  " of 79.11 GiB of which 3.2 GiB is free")
    assert memory_cause(ValueError("x")) is None


def test_the_default_cap_divides_the_machine_among_the_jobs(monkeypatch):
    from bench.runner import memcap

    monkeypatch.delenv(memcap.MEMORY_ENV, raising=False)
    monkeypatch.setattr(memcap, "machine_memory", lambda: 64 * 2**30)
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert memcap.memory_limit(2) == (8 * 2**30, "") and memcap.memory_limit(None) == (64 * 2**30, "")
    monkeypatch.setenv(memcap.MEMORY_ENV, "off")
    assert memcap.memory_limit(2)[0] is None
    monkeypatch.setenv(memcap.MEMORY_ENV, "lots")
    with pytest.raises(Exception, match="a number of GiB"):
        memcap.memory_limit(2)


def test_a_job_cgroup_is_made_where_the_harness_may(tmp_path, monkeypatch):
    """cgroup v2 (not on every test machine: a fake tree): the nearest writable cgroup at or above the
    harness's own that hands out the memory controller holds a job cgroup with the cap and the child."""
    from bench.runner import memcap

    root = tmp_path / "cg"
    own = root / "user.slice" / "me.scope"
    own.mkdir(parents=True)
    (root / "cgroup.controllers").write_text("cpu memory pids\n")
    for d, handed in ((root, "cpu memory"), (root / "user.slice", "memory pids"), (own, "")):
        (d / "cgroup.subtree_control").write_text(handed + "\n")
        (d / "cgroup.procs").write_text("")
    proc = tmp_path / "proc-cgroup"
    proc.write_text("0::/user.slice/me.scope\n")
    monkeypatch.setattr(memcap, "CGROUP_ROOT", str(root))
    monkeypatch.setattr(memcap, "PROC_CGROUP", str(proc))
    monkeypatch.setattr(memcap, "_PARENT", {})
    monkeypatch.delenv(memcap.CGROUP_ENV, raising=False)
    path = memcap.job_cgroup(4242, 2**30)
    assert path is not None and Path(path).parent == root / "user.slice"
    assert (Path(path) / "memory.max").read_text() == str(2**30) and (Path(path) / "cgroup.procs").read_text() == "4242"
    assert not memcap.oom_killed(path)
    (Path(path) / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert memcap.oom_killed(path)


def test_what_applied_is_summarised_and_an_unconfined_process_is_told_apart():
    full = {a: "x" for a in sandbox.ASPECTS}
    assert sandbox.summary(full) == "confined: writes, reads, network, leftovers, memory" and sandbox.unguarded(full) == []
    part = {**full, "network": "none: no namespaces", "leftovers": "none: no mount namespace"}
    assert sandbox.summary(part) == "confined: writes, reads, memory; not: network, leftovers" and sandbox.unguarded(part) == ["network"]
    off = {a: f"none: turned off by {sandbox.OFF_ENV}=off" for a in sandbox.ASPECTS}
    assert sandbox.summary(off) == f"none: turned off by {sandbox.OFF_ENV}=off" and sandbox.unguarded({}) == list(sandbox.GUARDS)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux")
def test_read_allowances_leave_out_exactly_the_private_paths(tmp_path):
    (tmp_path / "a" / "secret").mkdir(parents=True)
    (tmp_path / "a" / "kept").mkdir()
    (tmp_path / "a" / "file").write_text("x")
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "link").symlink_to(tmp_path / "a" / "secret")
    allowed = set(sandbox.read_allowances([str(tmp_path / "a" / "secret")]))
    assert {str(tmp_path / "a" / "kept"), str(tmp_path / "a" / "file"), str(tmp_path / "b")} <= allowed
    assert not {str(tmp_path / "a" / "secret"), str(tmp_path / "a" / "link"), str(tmp_path / "a"), str(tmp_path), "/"} & allowed
    assert "/usr" in allowed or not os.path.isdir("/usr")


def test_submit_refuses_where_a_method_process_would_be_unconfined(tmp_path, monkeypatch, capsys):
    """Before running anything (the probe says what a method process here gets); --accept-unconfined
    submits anyway (tests/test_voucher.py runs that way, and the voucher still refuses what it forged)."""
    from bench.cli import main
    from tests.helpers import write_suite

    monkeypatch.setenv(sandbox.OFF_ENV, "off")
    suite = write_suite(tmp_path / "s.yaml", ["original"])
    capsys.readouterr()
    assert main(["submit", str(HOSTILE_DIR / "exit0.py"), "--suite", str(suite), "--out", str(tmp_path / "res"), "--local"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "gets no writes, reads, network confinement" in last and "--accept-unconfined" in last, last
    assert not (tmp_path / "res").exists()


def test_records_say_what_confined_the_method_and_old_records_still_load():
    from bench.core.record import parse_record
    from tests.test_records import rec

    conf = {a: "x" for a in sandbox.ASPECTS}
    assert parse_record({**rec("j"), "method_confinement": conf}).method_confinement == conf
    assert parse_record(rec("j")).method_confinement == {}  # written before it existed: unknown
