"""A method process's memory cap: how much, and the cgroup that enforces it where the harness can make one.

How much: the machine's memory (or this process's own cgroup limit, where lower) times the job's share of
the machine, its CPUs over the machine's (the scheduler gives each job `cpus_per_job` of the cores; on GPU
machines that is the cores divided by the GPUs, one job per GPU), so the jobs that run at once never add up
to more than the machine. UNLEARN_BENCH_METHOD_MEMORY=N (GiB) sets it, =off turns it off.

Enforced, where the harness can create a cgroup v2 child (it may write the nearest cgroup at or above its
own that hands the memory controller to its children: the root cgroup for root on a host, a delegated
subtree for a user, or $UNLEARN_BENCH_CGROUP), by that cgroup: the harness moves the forked child there
before the child runs anything, with `memory.max` = the cap, `memory.swap.max` = 0 and `memory.oom.group` = 1,
so a job over the cap is OOM-killed as a whole, its `memory.events` says so and the cause reads "out of memory
(limit N GiB)"; the harness removes the cgroup after the job. Elsewhere the child sets RLIMIT_DATA
(bench/runner/sandbox.py): its allocations fail (MemoryError, torch's "can't allocate memory"), which the
child reports with the same cause. GPU memory is CUDA's to refuse: torch.OutOfMemoryError reads "out of
memory on the GPU: ..." (bench/runner/method_process.py).
"""
from __future__ import annotations

import os
import time

from bench.core.errors import ConfigError

MEMORY_ENV = "UNLEARN_BENCH_METHOD_MEMORY"  # GiB, or "off"
CGROUP_ENV = "UNLEARN_BENCH_CGROUP"  # a cgroup v2 directory this user may create children in
CGROUP_ROOT = "/sys/fs/cgroup"
PROC_CGROUP = "/proc/self/cgroup"

_PARENT: dict = {}  # cached per process: the cgroup to create job cgroups in (or None)


def memory_limit(threads: int | None) -> tuple[int | None, str]:
    """(the cap in bytes, or None with why there is none) for a job that uses `threads` of the CPUs."""
    value = os.environ.get(MEMORY_ENV, "").strip().lower()
    if value == "off":
        return None, f"turned off by {MEMORY_ENV}=off"
    if value:
        try:
            gib = float(value)
        except ValueError:
            gib = -1.0
        if not gib > 0:
            raise ConfigError(f"{MEMORY_ENV}={value!r}: a number of GiB (e.g. 8 or 0.5) or 'off'")
        return int(gib * 2**30), ""
    cpus = os.cpu_count() or 1
    share = min(1.0, max(threads or cpus, 1) / cpus)
    total = machine_memory()
    return (int(total * share), "") if total else (None, "the machine's memory is unknown")


def machine_memory() -> int | None:
    """Physical memory, or this process's cgroup limit where that is lower."""
    try:
        import psutil

        total = psutil.virtual_memory().total
    except Exception:  # noqa: BLE001 - no psutil or no /proc/meminfo
        total = None
    limits = [v for v in (_own_limit_v2(), _own_limit_v1()) if v]
    return min([total, *limits]) if total else (min(limits) if limits else None)


def _cgroup_lines() -> list[tuple[str, str, str]]:
    try:
        with open(PROC_CGROUP) as fh:
            return [tuple(line.rstrip("\n").split(":", 2)) for line in fh if line.count(":") >= 2]
    except OSError:
        return []


def own_cgroup() -> str | None:
    """This process's cgroup v2 path ("/..."), None without the unified hierarchy."""
    for _, controllers, path in _cgroup_lines():
        if controllers == "":
            return path
    return None


def _read_int(path: str) -> int | None:
    try:
        with open(path) as fh:
            text = fh.read().strip()
        return None if text == "max" else int(text)
    except (OSError, ValueError):
        return None


def _own_limit_v2() -> int | None:
    own = own_cgroup()
    if own is None or not os.path.isfile(os.path.join(CGROUP_ROOT, "cgroup.controllers")):
        return None
    limits = [_read_int(os.path.join(CGROUP_ROOT, d.lstrip("/"), "memory.max")) for d in _chain(own)]
    limits = [v for v in limits if v]
    return min(limits) if limits else None


def _own_limit_v1() -> int | None:
    for _, controllers, path in _cgroup_lines():
        if "memory" in controllers.split(","):
            value = _read_int(os.path.join(CGROUP_ROOT, "memory", path.lstrip("/"), "memory.limit_in_bytes"))
            return value if value and value < 2**60 else None
    return None


def _chain(path: str) -> list[str]:
    """`path` and its ancestors, nearest first ("/a/b" -> ["/a/b", "/a", "/"])."""
    out = [path]
    while path not in ("/", ""):
        path = os.path.dirname(path)
        out.append(path)
    return out


def cgroup_parent() -> str | None:
    """The cgroup v2 directory job cgroups are made in (once per process), None where there is none."""
    if "parent" not in _PARENT:
        given = os.environ.get(CGROUP_ENV)
        own = own_cgroup()
        candidates = [given] if given else []
        if own is not None and os.path.isfile(os.path.join(CGROUP_ROOT, "cgroup.controllers")):
            candidates += [os.path.join(CGROUP_ROOT, d.lstrip("/")).rstrip("/") or CGROUP_ROOT for d in _chain(own)]
        _PARENT["parent"] = next((d for d in candidates if _usable(d)), None)
    return _PARENT["parent"]


def _usable(d: str) -> bool:
    try:
        with open(os.path.join(d, "cgroup.subtree_control")) as fh:
            handed = fh.read().split()
    except OSError:
        return False
    return "memory" in handed and os.access(d, os.W_OK) and os.access(os.path.join(d, "cgroup.procs"), os.W_OK)


def _write(path: str, text: str) -> None:
    with open(path, "w") as fh:
        fh.write(text)


def job_cgroup(pid: int, limit: int) -> str | None:
    """A cgroup with memory.max = `limit`, holding `pid` (not yet running method code); None where the
    harness cannot make one (the child then limits itself)."""
    parent = cgroup_parent()
    if parent is None:
        return None
    path = os.path.join(parent, f"unlearn-bench-{os.getpid()}-{pid}")
    try:
        os.mkdir(path)
        _write(os.path.join(path, "memory.max"), str(int(limit)))
        for name, value in (("memory.swap.max", "0"), ("memory.oom.group", "1")):
            try:
                _write(os.path.join(path, name), value)
            except OSError:
                pass  # no swap accounting, or an older kernel: the cap still holds
        _write(os.path.join(path, "cgroup.procs"), str(pid))
        return path
    except OSError:
        remove_cgroup(path)
        return None


def oom_killed(path: str | None) -> bool:
    """Whether the kernel killed a process of the cgroup for going over its memory.max."""
    if not path:
        return False
    try:
        with open(os.path.join(path, "memory.events")) as fh:
            events = dict(line.split() for line in fh if len(line.split()) == 2)
    except OSError:
        return False
    return int(events.get("oom_kill", 0)) > 0 or int(events.get("oom_group_kill", 0)) > 0


def remove_cgroup(path: str | None, timeout: float = 5.0) -> None:
    """Kill what is left in it and remove it."""
    if not path or not os.path.isdir(path):
        return
    try:
        _write(os.path.join(path, "cgroup.kill"), "1")
    except OSError:
        pass
    deadline = time.monotonic() + timeout
    while True:
        try:
            os.rmdir(path)
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() >= deadline:
                return
            time.sleep(0.05)
