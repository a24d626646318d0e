"""The one way files are written in place: a temporary file unique to this writer in the same
directory, flushed to disk, then renamed over the target. A reader never sees half a file, and
concurrent writers of the same path (Ray workers filling one cache entry) never share a temp name.
Permissions are those a plain open() would give (umask applied; mkstemp's 0600 would hide results
and caches from the group)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

TMP_PREFIX = ".tmp-"  # readers that scan a directory skip these (bench/runner/records.py)


def write_atomic(path, write: Callable[[BinaryIO], object]) -> Path:
    """Create or replace `path` with what `write(binary file)` writes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX, suffix=path.suffix)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path, text: str) -> Path:
    return write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
