"""The results directory, checked and locked before any job starts.

An unwritable `--out` is found before the compute is spent, and two runs never write the same
directory at once (an advisory `flock` on RESULTS/.lock, released when the run ends or dies).
"""
from __future__ import annotations

import fcntl
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from bench.core.errors import ConfigError
from bench.runner.records import RECORD_DIR

LOCK_FILE = ".lock"


def check_writable(out) -> Path:
    out = Path(out)
    try:
        (out / RECORD_DIR).mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out / RECORD_DIR, prefix=".tmp-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ConfigError(f"results directory {out} is not writable ({exc.strerror or exc}); pass a writable --out") from None
    return out


@contextmanager
def results_lock(out) -> Iterator[Path]:
    """Hold RESULTS/.lock for the run; a second run on the same directory is refused."""
    out = check_writable(out)
    lock_path = out / LOCK_FILE
    fh = open(lock_path, "a+")
    try:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "?"
            raise ConfigError(f"another unlearn-bench run (pid {holder}) is writing to {out}; wait for it to end or pass another --out") from None
        fh.seek(0)
        fh.truncate()
        fh.write(str(os.getpid()))
        fh.flush()
        yield out
    finally:
        fh.close()  # closing releases the lock
