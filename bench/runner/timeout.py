"""Per-job wall-clock limits: a hung method ends as `failed: timeout after N s`, the suite goes on.

Two layers. In the process running the job (a Ray worker, `--local`, `submit`'s smoke run) a
timer raises JobTimeout in the job's thread wherever the method is; it derives from
BaseException so a method's `except Exception` cannot swallow it. On Ray a watchdog thread also ends the worker
process when the job outlives its limit by a grace period (a method stuck in C code, or one that
catches everything); the driver then records the timeout.
"""
from __future__ import annotations

import ctypes
import os
import threading
from contextlib import contextmanager
from typing import Iterator

from bench.core.log import get_logger

# defaults per task kind; a task class may set its own `timeout_s` (the mini tasks: 1 hour)
DEFAULT_TIMEOUT_S = {"class": 48 * 3600.0, "concept": 6 * 3600.0, "style": 6 * 3600.0}
SMOKE_TIMEOUT_S = 300.0


class JobTimeout(BaseException):
    """The job ran past its wall-clock limit."""


def timeout_message(seconds: float) -> str:
    return f"timeout after {seconds:g} s"


def default_timeout(task_cls) -> float:
    return float(getattr(task_cls, "timeout_s", None) or DEFAULT_TIMEOUT_S.get(task_cls.kind, 6 * 3600.0))


def grace_seconds(seconds: float) -> float:
    """How long past its limit a job that ignores JobTimeout may keep its worker. At least 10 s: the harness
    thread cannot take JobTimeout while it waits in one C call (a worker's first job starts its fork server
    inside the limit, seconds of imports on a loaded 2-core machine), and its clean-up must fit before this."""
    return min(60.0, max(10.0, seconds))


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Raise JobTimeout in this thread after `seconds` (None/0: no limit).

    A timer thread injects the exception (PyThreadState_SetAsyncExc), so it works on whatever
    thread runs the job (Ray runs tasks off the signal-handling path); it lands at the job's next
    Python bytecode, hence the worker watchdog for code stuck in one C call."""
    if not seconds:
        yield
        return
    target, lock, done = threading.get_ident(), threading.Lock(), threading.Event()

    def expire():  # again every half second: library code on the way may swallow one
        if done.wait(seconds):
            return
        while True:
            with lock:
                if done.is_set():
                    return
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target), ctypes.py_object(JobTimeout))
            if done.wait(0.5):
                return

    threading.Thread(target=expire, daemon=True, name="job-time-limit").start()
    try:
        yield
    except JobTimeout:
        raise JobTimeout(timeout_message(seconds)) from None
    finally:
        with lock:
            done.set()


@contextmanager
def worker_watchdog(seconds: float | None) -> Iterator[None]:
    """On a Ray worker only: end the process if the job is still running `grace` after its limit."""
    if not seconds:
        yield
        return

    def kill():
        get_logger("timeout").warning(f"unlearn-bench: job still running {grace_seconds(seconds):g} s past its {timeout_message(seconds)}; ending the worker")
        os._exit(124)

    timer = threading.Timer(seconds + grace_seconds(seconds), kill)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
