"""Method code runs in a child process the harness owns; the harness judges what it hands back.

A method is untrusted code. Run in the process that then computes its metrics, it could patch the
judge, crash the harness, exit it with status 0 or leave a thread or a process running. So every
call of a method's `unlearn` goes through `MethodRunner.unlearn`, and every call gets a fresh child:

- A fork server (`python -m bench.runner.method_process zygote FD`) is started once per harness
  process: it imports the suite (torch, diffusers, the tasks and methods: seconds on a small
  machine), reads each task's files into its caches once (`Task.warm`: base model, judges, data,
  on the CPU), never runs a method or touches a GPU, and forks one child per call, so a call's
  start-up is a fork, not an interpreter and a cold load. It ends when the harness process does.
  It must never initialise CUDA, nor even ask the CUDA runtime how many devices there are: a
  process forked after that cannot use the GPU ("Cannot re-initialize CUDA in forked subprocess"),
  and importing diffusers asks (`torch.accelerator.is_available()`). So the server asks NVML instead
  (PYTORCH_NVML_BASED_CUDA_CHECK=1, which initialises no CUDA context) and holds a
  fence (`_CudaFence`): torch's lazy CUDA initialisation raises and the runtime's device count
  answers 0 without calling CUDA. Each child lifts the fence before it runs anything; `server_state`
  reports the server's CUDA state (tests/test_method_process.py checks it on every machine).
- The child starts a session (so a process group) of its own, takes a fresh temporary directory
  outside `--out` as its working directory (it is never told where results go), adopts the
  harness's environment (less the record key's location and anything named like a credential) and
  import path, and confines itself before any method code runs (bench/runner/sandbox.py: no network,
  no write outside that directory, no read of the harness's secrets, private /dev/shm, a memory cap;
  what applied is its first message, the record's `method_confinement`). When it enters new user
  namespaces the harness writes its id maps from outside (the identity for root). It then builds the
  task, resolves the method (a plug-in's source is executed there, never in the harness), unlearns,
  and saves the denoiser's weights into its directory (`weights.safetensors`, the job's artifact); it
  answers with its counters (`Unlearned`).
- Memory: the harness puts the child in a cgroup with the job's memory cap where it can make one
  (bench/runner/memcap.py), else the child caps itself (RLIMIT_DATA); going over it reads "out of memory
  (limit N GiB)", CUDA's refusal "out of memory on the GPU: ...".
- The fork server is the child subreaper (Linux `prctl(PR_SET_CHILD_SUBREAPER)`), so a process the
  method detaches (double fork + setsid) is re-parented to it, stays a descendant of the harness
  and is found; the server reaps whatever ends below it. (The harness process itself is not made a
  subreaper: it would inherit, and have to reap, the orphans of everything else it runs, Ray's
  processes included.) When the call ends — answer, crash or timeout — the child's process group and
  every descendant that was not there before are killed and reaped before the answer is used; its
  cgroup is removed, and where it had no private /dev/shm, what it left there (new, this user's, held
  by no running process) is removed.
- A failure is one line: `timeout after N s`, `killed by signal 11 (SIGSEGV)`, `exited with code 0
  before returning a result`, `raised SystemExit(3)`, `raised KeyboardInterrupt`, `out of memory (limit
  N GiB)`, or the method's own error.
POSIX only (fork); the subreaper, which finds detached processes, is Linux's.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING

import psutil

from bench.core.errors import BenchError
from bench.runner import memcap, sandbox
from bench.runner.timeout import timeout_message

if TYPE_CHECKING:  # imported where used: the fork server fences CUDA off before the suite (diffusers) is imported
    from bench.runner.unlearn_stage import Unlearned, UnlearnRequest

PR_SET_CHILD_SUBREAPER = 36
START_TIMEOUT_S = 300.0  # a fork server that cannot even import the suite within this is reported as such


class MethodProcessError(BenchError):
    """The method's process failed; the message is the one-line cause."""

    def __init__(self, cause: str, traceback_text: str = "", error_type: str = "MethodProcessError", confinement: dict | None = None):
        super().__init__(cause)
        self.traceback_text = traceback_text
        self.error_type = error_type
        self.confinement = confinement or {}  # what confined the process (bench/runner/sandbox.py), as it reported


def become_subreaper() -> bool:
    """Make this process the reaper of its orphaned descendants (Linux); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


_MEMORY_LIMIT: list = [None]  # in a method process: its memory cap in bytes (for the cause of a failed allocation)


def out_of_memory(limit: int | None) -> str:
    return f"out of memory (limit {sandbox.gib_text(limit)})" if limit else "out of memory"


def memory_cause(exc: BaseException, limit: int | None = None) -> str | None:
    """The one-line cause when `exc` is a refused allocation: the host's (MemoryError, torch's "can't
    allocate memory") names the cap; the GPU's (torch.OutOfMemoryError) keeps CUDA's first sentence."""
    text = str(exc)
    if isinstance(exc, MemoryError) or (isinstance(exc, RuntimeError) and "can't allocate memory" in text):
        return out_of_memory(limit)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(exc, getattr(torch, "OutOfMemoryError", ())):
        first = " ".join(text.split(". Including")[0].split())[:300]
        return f"out of memory on the GPU: {first}"
    return None


def describe_exception(exc: BaseException) -> str:
    """The one-line cause of an exception raised by method code."""
    oom = memory_cause(exc, _MEMORY_LIMIT[0])
    if oom:
        return oom
    if isinstance(exc, SystemExit):
        return f"raised SystemExit({exc.code!r})" if exc.code is not None else "raised SystemExit()"
    if isinstance(exc, KeyboardInterrupt):
        return "raised KeyboardInterrupt"
    if isinstance(exc, BenchError):
        return " ".join(str(exc).split())
    return " ".join(f"{type(exc).__name__}: {exc}".split())


def exit_cause(returncode: int | None) -> str:
    if returncode is not None and returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {-returncode} ({name})"
    if returncode is None:
        return "ended before returning a result (its exit status was not reported)"
    return f"exited with code {returncode} before returning a result"


def _descendants() -> dict[int, psutil.Process]:
    try:
        return {p.pid: p for p in psutil.Process().children(recursive=True)}
    except psutil.Error:
        return {}


def _package_root() -> str:
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _parent_watch() -> None:
    """End this process when its parent does (the fork server with the harness, a child with the server)."""
    import threading

    parent = os.getppid()

    def watch():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


class _ForkServer:
    """The zygote process and the control connection to it."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        env = {**sandbox.scrubbed_env(dict(os.environ)),  # no secrets in the environment its children inherit
               "PYTHONPATH": os.pathsep.join(dict.fromkeys(p for p in [_package_root(), *sys.path] if p)),
               "PYTORCH_NVML_BASED_CUDA_CHECK": "1"}  # is_available() through NVML: no CUDA in the server (see above)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.runner.method_process", "zygote", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), cwd=tempfile.gettempdir(), env=env, start_new_session=True, stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self.ctl = Connection(ours.detach())
        self.exits: dict[int, int] = {}
        try:
            ready = self._recv() if self.ctl.poll(START_TIMEOUT_S) else None
        except (EOFError, OSError):
            ready = None
        if ready != ("ready",):
            code = self.proc.poll()
            self.close()
            how = f"signal {-code}" if code is not None and code < 0 else f"code {code}"
            raise MethodProcessError(f"the method fork server did not start within {START_TIMEOUT_S:g} s" if code is None else
                                     f"the method fork server ended ({how}) before it was ready; its error is on stderr above")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _read(self):
        """One message from the server; a child's exit status is kept in `exits` (and None returned)."""
        msg = self.ctl.recv()
        if msg[0] == "exited":
            self.exits[msg[1]] = msg[2]
            return None
        return msg

    def _recv(self):
        """The next message that is not an exit status."""
        while (msg := self._read()) is None:
            pass
        return msg

    def fork(self, task: str, options: dict) -> tuple[int, Connection]:
        """A new child (from a server whose caches hold `task`'s files) and the harness's end of its socket."""
        from multiprocessing.reduction import send_handle

        ours, theirs = socket.socketpair()
        self.exits.clear()  # statuses of earlier calls' children, which nobody asks for any more
        self.ctl.send(("fork", task, options))
        send_handle(self.ctl, theirs.fileno(), self.proc.pid)
        theirs.close()
        msg = self._recv()
        if msg[0] != "forked":
            raise MethodProcessError(f"the method fork server answered {msg!r}")
        return msg[1], Connection(ours.detach())

    def state(self) -> dict:
        """What the server says of itself (`_server_state`): its pid and CUDA state."""
        self.ctl.send(("state",))
        msg = self._recv()
        if msg[0] != "state":
            raise MethodProcessError(f"the method fork server answered {msg!r}")
        return msg[1]

    def exit_code(self, pid: int, timeout: float = 10.0) -> int | None:
        """The child's exit status as the server reaped it (negative: the signal), None if not in time."""
        deadline = time.monotonic() + timeout
        while pid not in self.exits and time.monotonic() < deadline:
            if self.ctl.poll(0.1):
                try:
                    self._read()
                except (EOFError, OSError):
                    break
        return self.exits.pop(pid, None)

    def close(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self.ctl.close()


class MethodRunner:
    """Runs `unlearn` requests, each in a fresh child (see the module docstring); one per harness process."""

    def __init__(self) -> None:
        self._server: _ForkServer | None = None

    @property
    def server_pid(self) -> int | None:
        """The fork server's pid (the one process of the runner that outlives a call)."""
        return self._server.proc.pid if self._server is not None and self._server.alive() else None

    def _fork_server(self) -> _ForkServer:
        if self._server is None or not self._server.alive():
            self._server = _ForkServer()
        return self._server

    def server_state(self) -> dict:
        """The fork server's own answer (started if need be): its pid, whether CUDA is initialised there, and what
        the fence refused it (`_CudaFence`)."""
        return self._fork_server().state()

    def unlearn(self, request: UnlearnRequest, timeout_s: float | None, private=()) -> Unlearned:
        """The method stage's answer (its weights in their own directory, which the caller removes), or
        MethodProcessError with the cause; no process of the call survives it. `private`: paths it may
        not read besides the harness's own (bench/runner/sandbox.py: private_paths), e.g. --out."""
        from bench.runner.unlearn_stage import WEIGHTS_FILE, Unlearned

        workdir = tempfile.mkdtemp(prefix="unlearn-bench-method-")
        try:
            result = self._run(request, timeout_s, workdir, private)
            if not isinstance(result, Unlearned):
                raise MethodProcessError(f"the method's process answered {type(result).__name__}, not its weights")
            path = os.path.join(workdir, WEIGHTS_FILE)
            if not os.path.isfile(path):
                raise MethodProcessError("the method's process answered without saving its weights")
            result.weights = path
            return result
        except BaseException:
            shutil.rmtree(workdir, ignore_errors=True)
            raise

    def call(self, request, timeout_s: float | None, private=()):
        """Any other request with a `run()` (bench/runner/method_info.py: describing a file method):
        its answer, or MethodProcessError; its directory and processes are gone when it returns."""
        workdir = tempfile.mkdtemp(prefix="unlearn-bench-method-")
        try:
            return self._run(request, timeout_s, workdir, private)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _run(self, request, timeout_s: float | None, workdir: str, private=()):
        before = _descendants()
        shm_before, started = sandbox.shm_entries(), time.time()
        server = self._fork_server()
        limit, why_no_limit = memcap.memory_limit(getattr(request, "threads", None))
        pid, conn, cgroup, confinement = None, None, None, {}
        try:
            pid, conn = server.fork(*(request.warm or (None, None)))
            cgroup = memcap.job_cgroup(pid, limit) if limit else None  # before the child runs anything
            request.workdir, request.sys_path = workdir, list(sys.path)
            request.env = sandbox.scrubbed_env(dict(os.environ))  # where the record key lives, credentials: not its business
            start = getattr(request, "start_from", None)
            request.confinement = sandbox.Plan(workdir, sandbox.private_paths(private), [start] if start else [], limit, cgroup, why_no_limit)
            reply = self._call(server, pid, conn, request, None if not timeout_s else time.monotonic() + timeout_s, timeout_s, confinement)
            if reply[0] != "ok":
                _, cause, tb, error_type = reply
                if memcap.oom_killed(cgroup):  # the kernel killed it (or one of its processes) at the cap
                    cause, error_type = out_of_memory(limit), "OutOfMemory"
                raise MethodProcessError(cause, tb, error_type, confinement)
            result = reply[1]
            if hasattr(result, "confinement"):
                result.confinement, result.sandbox = confinement, sandbox.summary(confinement)
            return result
        finally:
            if conn is not None:
                conn.close()
            if pid is not None:
                _kill_group(pid)
            self._end_leftovers(before, keep={server.proc.pid})
            memcap.remove_cgroup(cgroup)
            if not confinement.get("leftovers", "").startswith("private"):  # no private /dev/shm: what it left in the shared one
                sandbox.remove_new_shm(shm_before, started)

    def _call(self, server: _ForkServer, pid: int, conn: Connection, request, deadline: float | None,
              timeout_s: float | None, confinement: dict):
        """Send the request, serve the child's confinement messages (id maps to write; what applied, kept in
        `confinement`), and return its answer, or the failure."""
        try:
            conn.send(request)
            while True:
                while not conn.poll(1.0 if deadline is None else max(min(deadline - time.monotonic(), 1.0), 0.0)):
                    if deadline is not None and time.monotonic() >= deadline:
                        return ("failed", timeout_message(timeout_s), "", "JobTimeout")
                msg = conn.recv()
                if msg[0] == "unshared":  # it is in new user namespaces: its id maps are written from here
                    conn.send(("mapped", sandbox.write_id_maps(pid)))
                elif msg[0] == "confined":
                    confinement.update(msg[1])
                else:
                    return msg
        except (EOFError, OSError):
            return ("failed", exit_cause(server.exit_code(pid)), "", "MethodProcessError")

    def _end_leftovers(self, before: dict[int, psutil.Process], keep: set[int]) -> None:
        """Kill and reap every descendant that appeared during the call (the fork server excepted)."""
        extra = [p for pid, p in _descendants().items() if pid not in before and pid not in keep]
        for p in extra:
            try:
                p.kill()
            except psutil.Error:
                pass
        if extra:
            psutil.wait_procs(extra, timeout=10)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)  # the child's group: what it forked without leaving the group
    except (ProcessLookupError, PermissionError):
        pass


_RUNNER: MethodRunner | None = None


def method_runner() -> MethodRunner:
    """This process's runner (its fork server is started on first use and reused)."""
    global _RUNNER
    if _RUNNER is None:
        _RUNNER = MethodRunner()
    return _RUNNER


# -- the fork server and its children ---------------------------------------------------------------


class _CudaFence:
    """Keeps the fork server's torch off the GPU: its lazy CUDA initialisation raises and the CUDA runtime's device
    count answers 0 without calling CUDA (either would leave every child unable to use the GPU). What was refused is
    kept in `refused`; `lift()` (in each child, first) puts torch's own functions back."""

    def __init__(self) -> None:
        import torch

        self.torch, self.refused = torch, []
        self._lazy_init = torch.cuda._lazy_init  # what tensor.to("cuda") and every CUDA call reach first
        self._device_count = getattr(torch._C, "_cuda_getDeviceCount", None)  # torch.cuda.is_available() without NVML

        def lazy_init():
            self.refused.append("initialise CUDA")
            raise RuntimeError("the method fork server does not initialise CUDA (a process it forks could not use the GPU)")

        def device_count():
            self.refused.append("count CUDA devices through the CUDA runtime")
            return 0

        torch.cuda._lazy_init = lazy_init
        if self._device_count is not None:
            torch._C._cuda_getDeviceCount = device_count

    def lift(self) -> None:
        self.torch.cuda._lazy_init = self._lazy_init
        if self._device_count is not None:
            self.torch._C._cuda_getDeviceCount = self._device_count


class ForkServerProbe:
    """A request that answers what a fresh child of the fork server inherited: whether it can still use CUDA (torch
    refuses CUDA in a process forked after its parent touched it: `in_bad_fork`) and its torch's CUDA state; with
    `use_cuda`, it also puts a tensor on the GPU and says how that went (the GPU check asks)."""

    warm = None  # no task to warm
    workdir, env, sys_path = "", {}, []  # set by the runner

    def __init__(self, use_cuda: bool = False):
        self.use_cuda = use_cuda

    def run(self) -> dict:
        import torch

        out = {"pid": os.getpid(), "cuda_in_bad_fork": bool(torch.cuda._is_in_bad_fork()), "cuda_initialized": torch.cuda.is_initialized()}
        if self.use_cuda:
            try:
                out["cuda_use"] = f"ok: {float(torch.ones(2, device='cuda').sum()):g} on {torch.cuda.get_device_name(0)}"
            except Exception as exc:  # noqa: BLE001 - the answer is the cause
                out["cuda_use"] = describe_exception(exc)
        return out


def _server_state(fence: _CudaFence) -> dict:
    import torch

    return {"pid": os.getpid(), "cuda_initialized": torch.cuda.is_initialized(), "cuda_refused": list(dict.fromkeys(fence.refused))}


def _child(fd: int, fence: _CudaFence) -> None:
    """One call in a forked child: its own session, its confinement, then one request, one answer, and exit."""
    fence.lift()  # this process may use the GPU: the server never touched it
    os.setsid()
    conn = Connection(fd)
    try:
        request = conn.recv()
        os.chdir(request.workdir)
        os.environ.clear()
        os.environ.update(request.env)
        os.environ["TMPDIR"] = request.workdir  # temporary files go where writes are allowed
        tempfile.tempdir = None
        sys.path[:] = request.sys_path
        try:
            conn.send(("confined", _confine(conn, request)))  # before any of the method's code runs
            _parent_watch()  # a thread: only now (entering a user namespace needs a single thread)
            result = request.run()  # UnlearnRequest: the method stage; DescribeRequest: a file method's description
            reply = ("ok", result)
        except BaseException as exc:  # noqa: BLE001 - whatever the method raised is the job's cause
            reply = ("raised", describe_exception(exc), "".join(traceback.format_exception(exc))[-4000:], type(exc).__name__)
        try:
            conn.send(reply)
        except Exception as exc:  # noqa: BLE001 - e.g. an unpicklable statistic
            conn.send(("raised", f"the method's answer could not be sent: {type(exc).__name__}: {exc}", "", "MethodProcessError"))
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)  # whatever threads the method left behind end here


def _confine(conn: Connection, request) -> dict:
    plan = request.confinement or sandbox.Plan(request.workdir)
    _MEMORY_LIMIT[0] = plan.memory_bytes

    def unshared():
        conn.send(("unshared",))
        return conn.recv()[1]  # ("mapped", None or why not)

    return sandbox.confine(plan, unshared)


def zygote(ctl_fd: int) -> None:
    """The fork server: import everything once, then fork a child per request; report their exits."""
    from multiprocessing.reduction import recv_handle

    fence = _CudaFence()  # before the suite's imports: diffusers asks for the accelerator when imported

    import torch

    import bench.runner.unlearn_stage  # noqa: F401 - the suite, imported once for every child
    import methods.base
    from tasks.base import TASKS

    methods.base.METHODS.import_builtins()  # not the entry points: a child scans them with the harness's import path
    torch.set_num_threads(1)  # it computes nothing, and starts no thread pool a child would inherit
    warmed: set[str] = set()
    parent = os.getppid()
    ctl = Connection(ctl_fd)
    become_subreaper()  # where it cannot (not Linux), a process the method detaches is re-parented to init and escapes
    ctl.send(("ready",))
    children: set[int] = set()
    while os.getppid() == parent:
        while True:  # reap: the children it forked (their status goes to the harness) and orphans re-parented here
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid in children:
                children.discard(pid)
                ctl.send(("exited", pid, os.waitstatus_to_exitcode(status)))
        try:
            if not ctl.poll(0.05):
                continue
            msg = ctl.recv()
            if msg[0] == "state":
                ctl.send(("state", _server_state(fence)))
                continue
            if msg[0] != "fork":
                continue
            fd = recv_handle(ctl)
        except (EOFError, OSError):
            break
        key = repr(msg[1:])
        if msg[1] is not None and key not in warmed:  # the task's files into this process's caches, once; children inherit them
            warmed.add(key)
            try:
                TASKS.get(msg[1]).make(msg[2]).warm()
            except Exception:  # noqa: BLE001 - the child meets the same error and reports it
                pass
        pid = os.fork()
        if pid == 0:
            ctl.close()
            _child(fd, fence)
        os.close(fd)
        children.add(pid)
        ctl.send(("forked", pid))
    os._exit(0)


def main(argv: list[str]) -> None:
    if argv[:1] == ["zygote"]:
        zygote(int(argv[1]))


if __name__ == "__main__":
    main(sys.argv[1:])
