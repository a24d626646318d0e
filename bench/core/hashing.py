"""Content digests: the one home of the SHA-256 hashes that key caches, job ids and provenance.

Each function returns the first `length` hex digits of a SHA-256. What each one feeds the hash is
frozen: records, caches and job ids written before must still resolve, so a change here must keep
every digest byte-identical (tests/test_hashing.py writes each formula out by hand and compares).
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

_BLOCK = 1 << 22  # read files in 4 MiB blocks (the digest does not depend on it)

StrPath = str | os.PathLike


def json_digest(obj: Any, length: int = 16, *, default: Callable[[Any], Any] | None = None) -> str:
    """Of `json.dumps(obj, sort_keys=True)`: a spec's cache key, a job's setting hash.

    `default` as in json.dumps (`str` writes what JSON cannot; None raises TypeError on it)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=default).encode()).hexdigest()[:length]


def files_digest(paths: Iterable[StrPath], length: int = 16, *, root: StrPath | None = None) -> str:
    """Of the bytes of each file, in the order given; with `root`, each file's path relative to `root`
    (POSIX separators, UTF-8) goes into the hash just before its bytes."""
    h = hashlib.sha256()
    for path in paths:
        if root is not None:
            h.update(Path(path).relative_to(root).as_posix().encode())
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(_BLOCK), b""):
                h.update(block)
    return h.hexdigest()[:length]


def file_digest(path: StrPath, length: int = 16) -> str:
    """Of one file's bytes."""
    return files_digest([path], length)


def checkpoint_digest(directory: StrPath, pattern: str = "*.safetensors", length: int = 16, missing: str = "missing") -> str:
    """Of the weight files below `directory` (recursive `pattern`, sorted as paths), each with its
    relative name: a checkpoint's provenance. `missing` when no file matches."""
    files = sorted(Path(directory).rglob(pattern))
    if not files:
        return missing
    return files_digest(files, length, root=directory)


def tree_fingerprint(directory: StrPath, length: int = 16) -> str:
    """Cheap change detector over every file below `directory` (symlinks followed, as in the HF cache):
    relative path, size and mtime (ns) of each, contents unread."""
    root = Path(directory)
    h = hashlib.sha256()
    for f in sorted(root.rglob("*")):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:length]


def state_dict_digest(state_dict: Mapping[str, Any], length: int = 16) -> str:
    """Of a state dict's tensors, sorted by name: each name, then the tensor's raw bytes (on CPU,
    contiguous; bfloat16 through a same-width int16 view, numpy having no bfloat16)."""
    import torch

    h = hashlib.sha256()
    for name, tensor in sorted(state_dict.items()):
        h.update(name.encode())
        t = tensor.detach().cpu().contiguous()
        h.update((t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes())
    return h.hexdigest()[:length]


_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def cached_file_digest(path: StrPath) -> str:
    """`file_digest`, computed once per process and (size, mtime) state of the file."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        _FILE_DIGESTS[key] = file_digest(p)
    return _FILE_DIGESTS[key]


_VERIFIED: dict[tuple[str, str], str] = {}


def verified_checkpoint(directory: StrPath) -> str:
    """The checkpoint's digest, checked against the `sha256` its `recipe.json` records (when it has one).

    A mismatch is CheckpointMismatchError naming the directory and both digests: a corrupted or replaced
    weight file must not be scored as the checkpoint its recipe describes. Checked once per process and
    (size, mtime) state of the files, so a job pays a few stat calls."""
    from bench.core.errors import CheckpointMismatchError

    root = Path(directory).resolve()
    key = (str(root), tree_fingerprint(root))
    if key in _VERIFIED:
        return _VERIFIED[key]
    recipe = root / "recipe.json"
    expected = None
    if recipe.is_file():
        try:
            expected = json.loads(recipe.read_text()).get("sha256")
        except (ValueError, AttributeError):
            expected = None
    found = checkpoint_digest(root, length=len(expected) if isinstance(expected, str) and expected else 16)
    if isinstance(expected, str) and expected and found != expected:
        raise CheckpointMismatchError(
            f"checkpoint {root} does not match its recipe.json: sha256 {expected} recorded, {found} found "
            "(a corrupted or replaced weight file; restore it, e.g. `git checkout -- <dir>`, or recreate it with `unlearn-bench pretrain`)")
    _VERIFIED[key] = found
    return found
