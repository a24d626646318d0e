"""A method's process is confined before any of its code runs (Linux, no root needed).

A method runs as the harness's user. Without confinement it could write records, read the record
voucher's key and forge vouched records, join the harness's Ray cluster (the GCS port is in
gcs_server's command line, readable by anyone) and run unsandboxed tasks there, leave files in
/dev/shm, or take the machine into the kernel's OOM killer. So the forked child, single-threaded,
applies what the kernel and the user's rights allow, in this order, and reports per part what
applied (the record's `method_confinement`, summarised in `method_sandbox`):

- **Namespaces** (where unprivileged user namespaces are allowed: `unshare(CLONE_NEWUSER|NEWNS|NEWNET|NEWIPC)`;
  the harness writes the id maps from outside, the identity for root, the user's own ids otherwise): a
  network namespace with a loopback that is down, so no TCP/UDP reaches the harness, Ray or anything
  else, nor an abstract Unix socket outside; a mount namespace in which /dev/shm is a private tmpfs
  (capped at the memory limit) and /dev/mqueue a private mqueue, /dev/null is bind-mounted over every
  pathname Unix socket the kernel lists (/proc/net/unix) outside the method's directory, and an empty
  tmpfs covers each private directory (the voucher key's, Ray's, ~/.ray, credentials); an IPC namespace
  for SysV objects and POSIX queues. All of it goes with the namespaces' last process. Then every
  capability is dropped (bounding set included), so nothing the method runs can unmount a mask.
- **Landlock** (Linux >= 5.13, ABI n): the ruleset handles writing and reading. Writes only beneath
  its directory (TMPDIR points there; the artifact goes there) and /dev/shm, plus writing to existing
  device files under /dev (a GPU's). Reads everywhere except the private paths: Landlock allows, never
  denies, so reading is allowed beneath every entry of / but those, descending into each directory that
  leads to a private path (that directory itself becomes unlistable, and an entry made in it after the
  fork unreadable). ABI >= 4: no TCP bind or connect at all; ABI >= 6: no abstract Unix socket and no
  signal to a process outside its domain. From ABI 1, no ptrace of a process outside (so no
  /proc/PID/environ, /proc/PID/root or /proc/PID/mem of the harness), and no mount changes.
- **seccomp**: socket() only for AF_UNIX and AF_NETLINK (no IP, packet or vsock socket even without a
  network namespace), and no io_uring (which creates sockets past seccomp).
- **Memory**: the harness puts the child in a cgroup v2 with `memory.max` where it can create one
  (bench/runner/memcap.py); otherwise RLIMIT_DATA here: what the process maps at its start plus the cap.

Nothing else can connect a pathname Unix socket: Landlock has no right for it on this ABI, so without a
mount namespace the sockets stay reachable (said in `network`). Where a part is unavailable (another OS,
an older kernel, user namespaces forbidden, a container filtering syscalls) it is reported as "none: why"
and the others still apply; UNLEARN_BENCH_METHOD_SANDBOX=off turns all but the memory cap off (a library
that must write elsewhere), =no-namespaces leaves out the namespaces (what a machine that forbids them gets). The driver says in one line at the start of a run what a method process gets
on its machine (`probe`), and `submit` refuses to rank a method that ran without the network and read
confinement unless told to accept it. The harness removes what a method left in /dev/shm where there
was no private one (bench/runner/method_process.py).
"""
from __future__ import annotations

import ctypes
import json
import os
import resource
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from typing import Callable

OFF_ENV = "UNLEARN_BENCH_METHOD_SANDBOX"  # "off": no sandbox (e.g. a library that must write elsewhere); recorded
NO_NAMESPACES = "no-namespaces"  # its value for what a machine that forbids user namespaces gets (tests, diagnosis)
PRIVATE_ENV = "UNLEARN_BENCH_PRIVATE"  # more paths a method may not read (os.pathsep-separated)
ASPECTS = ("writes", "reads", "network", "leftovers", "memory")
GUARDS = ("writes", "reads", "network")  # without these a method can forge records: submit refuses to rank (bench/runner/submit.py)

SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446  # the same numbers on every Linux architecture
CREATE_RULESET_VERSION = 1 << 0
RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP, PR_SET_SECCOMP, PR_CAP_AMBIENT = 38, 24, 22, 47

# LANDLOCK_ACCESS_FS_*
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR, REMOVE_DIR, REMOVE_FILE = (1 << i for i in range(6))
MAKE_CHAR, MAKE_DIR, MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = (1 << i for i in range(6, 13))
REFER, TRUNCATE = 1 << 13, 1 << 14  # ABI 2 (rename/link across directories), ABI 3 (truncate)
FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE  # the rights a rule on a non-directory may carry
READ = READ_FILE | READ_DIR
NET_BIND_TCP, NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
SCOPE_ABSTRACT_UNIX_SOCKET, SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6

CLONE_NEWNS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWNET = 0x00020000, 0x08000000, 0x10000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 4096, 16384, 1 << 18


class SandboxError(RuntimeError):
    """The process is half-confined in a way it cannot work in (e.g. a user namespace without id maps)."""


@dataclass
class Plan:
    """What the harness asks of a method process's confinement (plain data: it is pickled to the child)."""

    workdir: str
    private: list = field(default_factory=list)  # paths it may not read (private_paths())
    readable: list = field(default_factory=list)  # read even beneath a private path (a chain's previous model)
    memory_bytes: int | None = None  # the memory cap; None: none
    memory_cgroup: str | None = None  # the harness put the process in this cgroup, memory.max = memory_bytes
    memory_note: str = ""  # why there is no cap, when there is none


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


_LIBC = None


def _libc():
    global _LIBC
    if _LIBC is None:
        _LIBC = ctypes.CDLL(None, use_errno=True)
        _LIBC.syscall.restype = ctypes.c_long
    return _LIBC


def _why() -> str:
    return os.strerror(ctypes.get_errno())


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 where there is none."""
    if not sys.platform.startswith("linux"):
        return 0
    abi = _libc().syscall(ctypes.c_long(SYS_CREATE_RULESET), None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION))
    return max(int(abi), 0)


def turned_off() -> bool:
    return os.environ.get(OFF_ENV, "").strip().lower() == "off"


# -- the harness's side: which paths are private, the id maps ------------------------------------------


def private_paths(extra=()) -> list[str]:
    """What a method may not read, as this harness process sees it: the record voucher's state directory
    (its key, and the list of results directories it has vouched in, all of which are private too), Ray's
    temporary directories and ~/.ray (its auth token), well-known credential stores, `extra` (this run's
    results directory) and $UNLEARN_BENCH_PRIVATE. Paths that do not exist are left out."""
    from bench.runner.voucher import known_results_dirs, state_dir

    home = os.path.expanduser("~")
    hf_home = os.environ.get("HF_HOME") or os.path.join(home, ".cache", "huggingface")
    paths = [str(state_dir()), *known_results_dirs(), *extra, *_ray_dirs(), os.path.join(home, ".ray"),
             os.environ.get("RAY_AUTH_TOKEN_PATH", ""), os.path.join(hf_home, "token"), os.path.join(home, ".huggingface"),
             *(os.path.join(home, p) for p in (".ssh", ".gnupg", ".aws", ".netrc", ".git-credentials", ".docker",
                                                ".kube", ".pypirc", os.path.join(".config", "gcloud"))),
             *os.environ.get(PRIVATE_ENV, "").split(os.pathsep)]
    return sorted({os.path.realpath(p) for p in paths if p and os.path.lexists(p)})


def _ray_dirs() -> list[str]:
    """Ray's temporary directories (sessions: the GCS address, logs, sockets): the defaults and, in a
    process where Ray runs, its node's own."""
    dirs = [os.path.join(base, "ray") for base in (os.environ.get("RAY_TMPDIR"), os.environ.get("TMPDIR"), "/tmp",
                                                     tempfile.gettempdir()) if base]
    ray = sys.modules.get("ray")
    if ray is not None and getattr(ray, "is_initialized", lambda: False)():
        try:
            node = ray._private.worker.global_worker.node  # private API: best effort
            dirs += [node.get_temp_dir_path(), node.get_session_dir_path()]
        except Exception:  # noqa: BLE001 - another Ray version: the defaults above still apply
            pass
    return dirs


def scrubbed_env(env: dict) -> dict:
    """The environment a method process gets: the harness's, less the voucher's state directory and
    anything named like a credential (RAY_AUTH_TOKEN, HF_TOKEN, AWS_SECRET_ACCESS_KEY, ...)."""
    from bench.runner.voucher import STATE_ENV

    def secret(name: str) -> bool:
        upper = name.upper()
        return name == STATE_ENV or any(w in upper for w in ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "API_KEY"))

    return {k: v for k, v in env.items() if not secret(k)}


def write_id_maps(pid: int | str, uid: int | None = None, gid: int | None = None) -> str | None:
    """Map ids in the user namespace `pid` has just entered, from outside it (or by itself: pid "self",
    with the ids it had before): every id as itself where this user may (root), else just this user's.
    None, or why not."""
    uid = os.geteuid() if uid is None else uid
    gid = os.getegid() if gid is None else gid
    proc = f"/proc/{pid}"
    try:
        if uid == 0:
            try:
                _write(f"{proc}/uid_map", "0 0 4294967295\n")
                _write(f"{proc}/gid_map", "0 0 4294967295\n")
                return None
            except OSError:
                pass  # root of a container whose own namespace maps fewer ids: just ours
        try:
            _write(f"{proc}/setgroups", "deny\n")
        except FileNotFoundError:
            pass
        _write(f"{proc}/uid_map", f"{uid} {uid} 1\n")
        _write(f"{proc}/gid_map", f"{gid} {gid} 1\n")
        return None
    except OSError as exc:
        return f"writing its id maps failed ({exc.strerror or exc})"


def _write(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


# -- the child's side ----------------------------------------------------------------------------------


def confine(plan: Plan, on_unshared: Callable[[], str | None] | None = None) -> dict[str, str]:
    """Confine this (single-threaded) process and all it will start, as far as possible; what applied,
    per aspect ("none: why" where nothing did). `on_unshared`: called once it is in new namespaces, to
    have the id maps written from outside (returns None or why not); without it, or where that fails,
    the process maps its own ids."""
    out = {a: "" for a in ASPECTS}
    out["memory"] = _limit_memory(plan)
    if turned_off():
        return {**out, **{a: f"none: turned off by {OFF_ENV}=off" for a in ASPECTS if a != "memory"}}
    if not sys.platform.startswith("linux"):
        return {**out, **{a: f"none: not Linux ({sys.platform})" for a in ASPECTS if a != "memory"}}
    private = _usable_private(plan)
    ns = _namespaces(plan, private, on_unshared)
    abi, landlock = _landlock(plan, private)
    seccomp = _seccomp()
    out["writes"] = f"landlock ABI {abi}: only beneath its directory and /dev/shm, and existing device files" if not landlock else f"none: {landlock}"
    out["reads"] = (f"landlock ABI {abi}: none of {len(private)} private path(s)" if not landlock else f"none: {landlock}") + (
        "; masked in its mount namespace" if ns["mounts"] is None else "")
    out["network"] = _network_summary(ns, abi, landlock, seccomp)
    out["leftovers"] = ("private /dev/shm and /dev/mqueue, IPC namespace" if ns["mounts"] is None else
                        f"the harness removes what is new in /dev/shm at the job's end (no mount namespace: {ns['mounts']})")
    return out


def summary(confinement: dict | None) -> str:
    """`method_sandbox`: one line saying which parts applied."""
    if not confinement:
        return "none: not reported"
    done = [a for a in ASPECTS if not str(confinement.get(a, "none")).startswith("none")]
    if not done:
        return str(confinement.get("writes", "none"))
    missing = [a for a in ASPECTS if a not in done]
    return f"confined: {', '.join(done)}" + (f"; not: {', '.join(missing)}" if missing else "")


def unguarded(confinement: dict | None) -> list[str]:
    """The parts without which a method can reach records, the record key or the cluster (GUARDS) that
    did not apply to a process."""
    if not confinement:
        return list(GUARDS)
    return [a for a in GUARDS if str(confinement.get(a, "none")).startswith("none")]


def _usable_private(plan: Plan) -> list[str]:
    """The private paths that exist and hold nothing the process needs (its directory, the Python
    installation, the import path, what it must read)."""
    needed = [plan.workdir, *plan.readable, sys.prefix, sys.base_prefix, sys.exec_prefix, *(p for p in sys.path if p)]
    needed = [os.path.realpath(p) for p in needed]
    out = []
    for p in plan.private:
        p = os.path.realpath(p)
        if os.path.lexists(p) and p != "/" and not any(n == p or n.startswith(p.rstrip("/") + "/") for n in needed):
            out.append(p)
    return sorted(set(out))


def _network_summary(ns: dict, abi: int, landlock: str | None, seccomp: str | None) -> str:
    parts = []
    if ns["unshare"] is None:
        parts.append("network namespace")
    if not landlock and abi >= 4:
        parts.append(f"landlock ABI {abi}: no TCP" + (", no abstract Unix socket outside" if abi >= 6 else ""))
    if seccomp is None:
        parts.append("seccomp: no IP sockets")
    if not parts:
        return "none: " + "; ".join(w for w in (ns["unshare"], landlock or f"landlock ABI {abi} < 4", seccomp) if w)
    if ns["mounts"] is None:
        parts.append(f"{ns['sockets']} Unix socket(s) outside masked")
    else:
        parts.append("Unix sockets outside reachable (no mount namespace)")
    return "; ".join(parts)


def _namespaces(plan: Plan, private: list[str], on_unshared) -> dict:
    """New user, mount, network and IPC namespaces, set up; {"unshare": None or why not, "mounts": None
    or why not, "sockets": how many were masked}."""
    state = {"unshare": None, "mounts": "no namespaces", "sockets": 0}
    sockets = unix_socket_paths()  # before the network namespace, whose list is empty
    uid, gid = os.geteuid(), os.getegid()  # in the new user namespace they read as the overflow id until mapped
    if os.environ.get(OFF_ENV, "").strip().lower() == NO_NAMESPACES:
        state["unshare"] = f"user namespaces unavailable ({OFF_ENV}={NO_NAMESPACES})"
        return state
    if _libc().unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC) != 0:
        state["unshare"] = f"user namespaces unavailable ({_why()})"
        return state
    why = on_unshared() if on_unshared else "no one outside to write them"
    if why is not None and write_id_maps("self", uid, gid) is not None:
        raise SandboxError(f"the method process's user namespace has no id maps: {why} "
                           f"({OFF_ENV}={NO_NAMESPACES} runs method processes without namespaces)")
    state["mounts"], state["sockets"] = _mounts(plan, private, sockets)
    _drop_capabilities()
    return state


def unix_socket_paths() -> list[str]:
    """The pathname Unix sockets bound in this network namespace (the kernel's list)."""
    try:
        with open("/proc/net/unix") as fh:
            lines = fh.read().splitlines()[1:]
    except OSError:
        return []
    return sorted({parts[7] for parts in (ln.split() for ln in lines) if len(parts) >= 8 and parts[7].startswith("/")})


def _mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> bool:
    return _libc().mount(source.encode(), target.encode(), fstype.encode() if fstype else None, ctypes.c_ulong(flags),
                         data.encode() if data else None) == 0


def _mounts(plan: Plan, private: list[str], sockets: list[str]) -> tuple[str | None, int]:
    """The mount namespace's changes; (None or why not, sockets masked)."""
    if not _mount("none", "/", None, MS_REC | MS_PRIVATE):
        return f"making / private failed ({_why()})", 0
    size = f",size={plan.memory_bytes}" if plan.memory_bytes else ""
    if os.path.isdir("/dev/shm") and not _mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777{size}"):
        return f"a private /dev/shm failed ({_why()})", 0
    if os.path.isdir("/dev/mqueue"):
        _mount("mqueue", "/dev/mqueue", "mqueue", MS_NOSUID | MS_NODEV | MS_NOEXEC)  # this IPC namespace's queues
    inside = plan.workdir.rstrip("/") + "/"
    masked = sum(_mask(p, is_dir=False) for p in sockets if not p.startswith(inside))
    keep = [os.path.realpath(p) for p in plan.readable]
    for p in private:  # an empty tmpfs (or /dev/null) over each, unless something it must read is beneath
        if not any(k == p or k.startswith(p.rstrip("/") + "/") for k in keep):
            _mask(p, is_dir=os.path.isdir(p))
    return None, masked


def _mask(path: str, is_dir: bool) -> bool:
    if is_dir:
        return _mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,nr_inodes=1,mode=000")
    return _mount("/dev/null", path, None, MS_BIND)


def _drop_capabilities() -> None:
    """No capability left in its user namespace (none that an execve could give back either), but, for
    root, reading and writing files as root did (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH): no unmounting."""
    libc = _libc()
    keep = (1 << 1) | (1 << 2) if os.getuid() == 0 else 0
    for cap in range(64):
        if not keep >> cap & 1:
            libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0)
    libc.prctl(PR_CAP_AMBIENT, 4, 0, 0, 0)  # PR_CAP_AMBIENT_CLEAR_ALL
    data = (_CapData * 2)(_CapData(keep, keep, 0))
    libc.capset(ctypes.byref(_CapHeader(0x20080522, 0)), data)  # _LINUX_CAPABILITY_VERSION_3, this process


def read_allowances(private: list[str]) -> list[str]:
    """The paths beneath which reading is allowed: every entry of / but the private paths, descending into
    each directory that leads to one (itself not listed). Symbolic links are left out: what they point to
    is allowed or not in its own place."""
    deny = set(private)
    if not deny:
        return ["/"]
    lead = {os.path.dirname(p) for p in deny}
    for p in list(lead):
        while p != "/":
            p = os.path.dirname(p)
            lead.add(p)
    out: list[str] = []

    def walk(d: str) -> None:
        try:
            entries = list(os.scandir(d))
        except OSError:
            return
        for e in entries:
            p = os.path.join(d, e.name)
            if p in deny:
                continue
            if p in lead:
                walk(p)
            elif not e.is_symlink():
                out.append(p)

    walk("/")
    return out


def _landlock(plan: Plan, private: list[str]) -> tuple[int, str | None]:
    """(ABI, None) once applied; (ABI, why not) otherwise."""
    abi = landlock_abi()
    if abi <= 0:
        return 0, "this kernel has no Landlock (Linux >= 5.13 with landlock among its LSMs)"
    libc = _libc()
    writes = WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_CHAR | MAKE_DIR | MAKE_REG | MAKE_SOCK | MAKE_FIFO | MAKE_BLOCK | MAKE_SYM
    writes |= (REFER if abi >= 2 else 0) | (TRUNCATE if abi >= 3 else 0)
    handled = writes | READ
    attr = _RulesetAttr(handled, NET_BIND_TCP | NET_CONNECT_TCP if abi >= 4 else 0,
                        SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL if abi >= 6 else 0)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8  # the struct as long as this ABI knows it
    fd = libc.syscall(ctypes.c_long(SYS_CREATE_RULESET), ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if fd < 0:
        return abi, f"landlock_create_ruleset failed ({_why()})"
    try:
        rules = [(p, READ) for p in read_allowances(private)] + [(p, READ) for p in plan.readable]
        rules += [("/dev", READ | WRITE_FILE | (TRUNCATE if abi >= 3 else 0)), ("/dev/shm", handled), (plan.workdir, handled)]
        for path, rights in rules:
            why = _add_rule(fd, path, rights)
            if why:
                return abi, why
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return abi, f"prctl(PR_SET_NO_NEW_PRIVS) failed ({_why()})"
        if libc.syscall(ctypes.c_long(SYS_RESTRICT_SELF), ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
            return abi, f"landlock_restrict_self failed ({_why()})"
    finally:
        os.close(fd)
    return abi, None


def _add_rule(ruleset: int, path: str, rights: int) -> str | None:
    try:
        pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return None  # gone, or not there (no /dev/shm): nothing to allow
    try:
        if not os.path.isdir(f"/proc/self/fd/{pfd}"):
            rights &= FILE_RIGHTS  # a file only gets the rights that apply to files
        rule = _PathBeneathAttr(rights, pfd)
        if _libc().syscall(ctypes.c_long(SYS_ADD_RULE), ctypes.c_int(ruleset), ctypes.c_int(RULE_PATH_BENEATH),
                           ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
            return f"landlock_add_rule({path}) failed ({_why()})"
    finally:
        os.close(pfd)
    return None


# seccomp: (audit arch, socket, io_uring_setup) per architecture
_SECCOMP_ARCH = {"x86_64": (0xC000003E, 41, 425), "aarch64": (0xC00000B7, 198, 425)}
AF_UNIX, AF_NETLINK, EACCES, EPERM = 1, 16, 13, 1


def _seccomp() -> str | None:
    """A filter: socket() only for AF_UNIX and AF_NETLINK, no io_uring; None once installed, else why not."""
    arch = _SECCOMP_ARCH.get(os.uname().machine)
    if arch is None:
        return f"seccomp filter not written for {os.uname().machine}"
    audit_arch, nr_socket, nr_uring = arch
    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06
    allow, kill = 0x7FFF0000, 0x80000000

    def errno(e):
        return 0x00050000 | e

    prog = [  # classic BPF; jumps count the instructions to skip
        (ld, 0, 0, 4), (jeq, 1, 0, audit_arch), (ret, 0, 0, kill),  # 0-2: another ABI (a 32-bit binary) is killed
        (ld, 0, 0, 0), (jge, 0, 1, 0x40000000), (ret, 0, 0, errno(EPERM)),  # 3-5: x32 system calls are refused
        (jeq, 3, 0, nr_socket), (jeq, 0, 1, nr_uring), (ret, 0, 0, errno(EPERM)), (ret, 0, 0, allow),  # 6-9
        (ld, 0, 0, 16), (jeq, 2, 0, AF_UNIX), (jeq, 1, 0, AF_NETLINK), (ret, 0, 0, errno(EACCES)), (ret, 0, 0, allow),  # 10-14: socket()
    ]
    filters = (_SockFilter * len(prog))(*[_SockFilter(*f) for f in prog])
    fprog = _SockFprog(len(prog), filters)
    libc = _libc()
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return f"prctl(PR_SET_NO_NEW_PRIVS) failed ({_why()})"
    if libc.prctl(PR_SET_SECCOMP, 2, ctypes.byref(fprog), 0, 0) != 0:  # SECCOMP_MODE_FILTER
        return f"seccomp filter refused ({_why()})"
    return None


def _limit_memory(plan: Plan) -> str:
    if plan.memory_bytes is None:
        return f"none: {plan.memory_note or 'no limit asked'}"
    gib = gib_text(plan.memory_bytes)
    if plan.memory_cgroup:
        return f"cgroup v2 memory.max {gib} (all its processes together)"
    start = _data_size()
    limit = start + plan.memory_bytes
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    try:
        resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    except (ValueError, OSError) as exc:
        return f"none: setrlimit(RLIMIT_DATA) failed ({exc})"
    return f"RLIMIT_DATA: {gib} above what it maps at its start (each of its processes)"


def _data_size() -> int:
    """This process's data segment (private writable mappings) in bytes: what RLIMIT_DATA counts."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmData:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def gib_text(n: int) -> str:
    return f"{round(n / 2**30, 1):g} GiB"


# -- /dev/shm where there is no private one -------------------------------------------------------------


def shm_entries() -> dict[str, int]:
    """/dev/shm's entries (name -> inode) as they are now."""
    try:
        return {e.name: e.inode() for e in os.scandir("/dev/shm")}
    except OSError:
        return {}


def remove_new_shm(before: dict[str, int], since: float) -> list[str]:
    """Remove what appeared in /dev/shm since `before` (made at time `since`), is this user's and is held
    by no running process (another job's live segment is kept); the names removed."""
    new = [(n, i) for n, i in shm_entries().items() if before.get(n) != i]
    removed = []
    held = _held_shm() if new else set()
    for name, _ in new:
        path = os.path.join("/dev/shm", name)
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if st.st_uid != os.geteuid() or st.st_ctime < since - 1 or path in held:
            continue
        try:
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.unlink(path)
            removed.append(name)
        except OSError:
            pass
    return removed


def _held_shm() -> set[str]:
    """The /dev/shm paths some process of this user has open or mapped."""
    held = set()
    for pid in (p for p in os.listdir("/proc") if p.isdigit()):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("/dev/shm/"):
                    held.add(target.split(" (deleted)")[0])
            with open(f"/proc/{pid}/maps") as fh:
                held.update(ln.split(None, 5)[5].strip() for ln in fh if "/dev/shm/" in ln and len(ln.split(None, 5)) == 6)
        except OSError:
            continue
    return held


# -- what a method process gets here -------------------------------------------------------------------


_PROBED: dict = {}


def probe(timeout: float = 30.0) -> dict[str, str]:
    """What a method process started here would get: a throwaway interpreter confines itself and reports
    (once per process and value of UNLEARN_BENCH_METHOD_SANDBOX)."""
    key = os.environ.get(OFF_ENV, "")
    if key not in _PROBED:
        _PROBED[key] = _probe(timeout)
    return dict(_PROBED[key])


def _probe(timeout: float) -> dict[str, str]:
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
    workdir = tempfile.mkdtemp(prefix="unlearn-bench-probe-")
    try:
        done = subprocess.run([sys.executable, "-c", "import sys; from bench.runner.sandbox import _probe_main; _probe_main(sys.argv[1])",
                               workdir], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout)
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as exc:
        return {a: f"none: the probe failed ({type(exc).__name__})" for a in ASPECTS}
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _probe_main(workdir: str) -> None:
    try:
        got = confine(Plan(workdir, memory_note="not asked by the probe"))
    except SandboxError as exc:
        got = {a: f"none: {exc}" for a in ASPECTS}
    print(json.dumps(got), flush=True)


def notice(confinement: dict) -> str | None:
    """The one line a run starts with where a method process here is not fully confined (None where it is)."""
    missing = [a for a in ASPECTS if a != "memory" and str(confinement.get(a, "none")).startswith("none")]
    if not missing:
        return None
    return (f"method processes on this machine run without confinement of their {', '.join(missing)}: "
            + "; ".join(f"{a}: {confinement.get(a, 'none')}" for a in missing))
