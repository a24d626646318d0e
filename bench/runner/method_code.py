"""A method's code, as a hash: what a tuned point was selected with, so that a row tuned on older code says so.

A built-in or installed method: its module and every module of the same top-level package it reads from
(methods/graddiff.py reads methods/losses.py, methods/training.py, ...), by source text. A change to a helper
the method uses changes its hash; a change to another method does not. A submitted file (`FILE.py[:Name]`):
the file's text, read on the driver and never imported in the harness (bench/runner/method_info.py); a worker
hashes the text the driver shipped (bench/runner/job.py: base_record), never a path of its own machine.
"""
from __future__ import annotations

import hashlib
import inspect
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from bench.runner.plugins import is_file_reference

CODE_HASH_CHARS = 12


def _module_of(obj) -> str | None:
    if isinstance(obj, ModuleType):
        return obj.__name__
    return getattr(obj, "__module__", None) if (inspect.isclass(obj) or inspect.isfunction(obj)) else None


def package_closure(module_name: str) -> list[str]:
    """The module and every module of its top-level package it reaches through its globals, sorted."""
    package = module_name.split(".")[0]
    seen, todo = set(), [module_name]
    while todo:
        name = todo.pop()
        if name in seen or name not in sys.modules:
            continue
        seen.add(name)
        for value in vars(sys.modules[name]).values():
            other = _module_of(value)
            if other and other.split(".")[0] == package and other not in seen:
                todo.append(other)
    return sorted(seen)


@lru_cache(maxsize=None)
def method_code_hash(method: str) -> str:
    """sha256 (first CODE_HASH_CHARS hex) of the method's code; "unknown" when it cannot be read."""
    digest = hashlib.sha256()
    try:
        if is_file_reference(method):
            digest.update(Path(method.split(":")[0]).read_text().encode())  # as MethodSource.sha256 hashes a shipped file
            return digest.hexdigest()[:CODE_HASH_CHARS]
        from methods.base import METHODS

        cls = METHODS.get(method)
        for name in package_closure(cls.__module__):
            source = inspect.getsource(sys.modules[name])
            digest.update(name.encode() + b"\0" + source.encode() + b"\0")
    except Exception:  # noqa: BLE001 - an unknown method is planning's error to report, not this label's
        return "unknown"
    return digest.hexdigest()[:CODE_HASH_CHARS]
