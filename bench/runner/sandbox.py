"""A method's process may write only inside its own working directory (Linux Landlock).

Without it, a method running as the harness's user can write anywhere the user can: rewrite
records under `--out`, plant entries in the suite's cache (which evaluation reads), or edit the
shipped checkpoints. Landlock (Linux ≥ 5.13, unprivileged, inherited by every process the method
starts, irreversible) restricts the child to creating, writing, truncating, renaming and removing
files only beneath the hierarchies given: its working directory (the artifact goes there, and
TMPDIR points there) and /dev (a GPU's device files are opened read-write; /dev/shm holds
DataLoader workers' tensors). Reading is unrestricted (the method reads the task's data and
checkpoints, the suite's code and the Python installation). A sandboxed process also cannot
ptrace, hence cannot write the memory of, a process outside its sandbox (Landlock's scoping).

Where the kernel has no Landlock (another OS, an older kernel, a container that filters the
syscall), or where the harness's environment says UNLEARN_BENCH_METHOD_SANDBOX=off, the child runs
unsandboxed and its record says so (`method_sandbox`); the record voucher (bench/runner/voucher.py)
still tells the driver's records from planted ones.
"""
from __future__ import annotations

import ctypes
import os
import sys

SYS_CREATE_RULESET, SYS_ADD_RULE, SYS_RESTRICT_SELF = 444, 445, 446  # the same numbers on every Linux architecture
CREATE_RULESET_VERSION = 1 << 0
RULE_PATH_BENEATH = 1
PR_SET_NO_NEW_PRIVS = 38
OFF_ENV = "UNLEARN_BENCH_METHOD_SANDBOX"  # "off": no sandbox (e.g. a library that must write elsewhere); recorded

# LANDLOCK_ACCESS_FS_*: the rights that change the filesystem (reading and executing are left alone)
WRITE_FILE, REMOVE_DIR, REMOVE_FILE = 1 << 1, 1 << 4, 1 << 5
MAKE_CHAR, MAKE_DIR, MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = (1 << i for i in range(6, 13))
REFER, TRUNCATE = 1 << 13, 1 << 14  # ABI 2 (rename/link across directories), ABI 3 (truncate)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64)]  # ABI 1 layout: the kernel accepts the shorter struct


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 where there is none."""
    if not sys.platform.startswith("linux"):
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(ctypes.c_long(SYS_CREATE_RULESET), None, ctypes.c_size_t(0), ctypes.c_uint32(CREATE_RULESET_VERSION))
    return max(int(abi), 0)


def write_rights(abi: int) -> int:
    rights = WRITE_FILE | REMOVE_DIR | REMOVE_FILE | MAKE_CHAR | MAKE_DIR | MAKE_REG | MAKE_SOCK | MAKE_FIFO | MAKE_BLOCK | MAKE_SYM
    if abi >= 2:
        rights |= REFER
    if abi >= 3:
        rights |= TRUNCATE
    return rights


def restrict_writes(writable: list[str]) -> str:
    """Allow this process (and all it starts) to change the filesystem only beneath `writable`.
    Returns what was done, for the record: "landlock ABI n: writes only beneath …", or
    "none: <why>" when the kernel offers no sandbox (the caller goes on without one)."""
    if os.environ.get(OFF_ENV, "").strip().lower() == "off":
        return f"none: turned off by {OFF_ENV}=off"
    abi = landlock_abi()
    if abi <= 0:
        return "none: this kernel has no Landlock (Linux >= 5.13 with landlock in its LSMs)"
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    rights = write_rights(abi)
    attr = _RulesetAttr(rights)
    fd = libc.syscall(ctypes.c_long(SYS_CREATE_RULESET), ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)), ctypes.c_uint32(0))
    if fd < 0:
        return f"none: landlock_create_ruleset failed ({os.strerror(ctypes.get_errno())})"
    try:
        for path in writable:
            try:
                pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # e.g. no /dev/shm: nothing to allow there
            try:
                # a directory may hold files; a regular file only gets the rights that apply to files
                allowed = rights if os.path.isdir(path) else rights & (WRITE_FILE | TRUNCATE)
                rule = _PathBeneathAttr(allowed, pfd)
                if libc.syscall(ctypes.c_long(SYS_ADD_RULE), ctypes.c_int(fd), ctypes.c_int(RULE_PATH_BENEATH),
                                ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
                    return f"none: landlock_add_rule({path}) failed ({os.strerror(ctypes.get_errno())})"
            finally:
                os.close(pfd)
        if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            return f"none: prctl(PR_SET_NO_NEW_PRIVS) failed ({os.strerror(ctypes.get_errno())})"
        if libc.syscall(ctypes.c_long(SYS_RESTRICT_SELF), ctypes.c_int(fd), ctypes.c_uint32(0)) != 0:
            return f"none: landlock_restrict_self failed ({os.strerror(ctypes.get_errno())})"
    finally:
        os.close(fd)
    return f"landlock ABI {abi}: writes only beneath {', '.join(writable)}"
