"""`unlearn-bench fetch prompts`: the field's prompt sets (bench/core/prompt_sets.py) into the prompt-set cache, each
file checked against its pinned sha256.

- Sets whose licence allows it (MIT) are downloaded from GitHub at the pinned commit (raw.githubusercontent.com), or
  from `--mirror URL|DIR` (each under its file name), by the streaming, hash-checked download of `fetch`.
- `--from DIR` takes the files from a directory of the user's instead (by file name) and downloads nothing: the only
  way in for a set without a licence (RGD's lists, never downloaded or shipped).
- A file whose sha256 is not the pinned one is refused and named in one line (set, expected and actual hash); a
  cached copy that no longer checks out is removed.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable

from bench.core.fetch_registry import FileSpec
from bench.core.prompt_sets import (
    FETCH_PROMPTS,
    UNPINNED,
    PromptSet,
    file_set,
    get_set,
    prompt_set_dir,
    registry,
    sha256_file,
)
from bench.runner.fetch import (
    FETCHED,
    MISSING,
    OK,
    TMP_PREFIX,
    FetchError,
    HashMismatch,
    Row,
    download,
    render,
    source_url,
)

COPIED = "copied"


def suite_prompt_sets(suite_name: str) -> list[str]:
    """The sets a suite's tasks name in their options (every prompt-set option of every task entry)."""
    from bench.runner.plan import load_suite

    names: list[str] = []
    for te in load_suite(suite_name).tasks:
        for option, value in te.options.items():
            if option.endswith("_set") and isinstance(value, str) and value not in names and value in registry():
                names.append(value)
    return names


def files_for(names: list[str] | None, sets: dict[str, PromptSet] | None = None) -> list[PromptSet]:
    """The file-backed sets behind `names` (a subset brings the set it is cut from), in registry order; None: all."""
    sets = registry(sets)
    wanted = list(sets) if names is None else names
    files = {file_set(get_set(n, sets), sets).name for n in wanted}
    return [s for s in sets.values() if s.name in files]


def _refusal(s: PromptSet, path: Path, actual: str) -> str:
    return f"prompt set {s.name!r}: {path} has sha256 {actual}, expected {s.sha256}; refused"


def _copy_in(src: Path, target: Path) -> None:
    """Copy to a temporary file beside the target, then rename: a half-copied file is never a cached set."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=TMP_PREFIX, suffix=".part")
    try:
        with open(fd, "wb") as out, open(src, "rb") as inp:
            shutil.copyfileobj(inp, out)
        Path(tmp).replace(target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _cached_status(s: PromptSet, target: Path, dry_run: bool, log: Callable[[str], None]) -> str:
    """OK when the cached copy checks out; a copy that does not is removed (unless dry_run)."""
    if not target.is_file():
        return MISSING
    actual = sha256_file(target)
    if s.sha256 == UNPINNED or actual == s.sha256:
        return OK
    log(f"fetch prompts: {_refusal(s, target, actual)}; the cached copy is removed")
    if not dry_run:
        target.unlink()
    return "bad hash (cached copy)"


def _from_dir(s: PromptSet, source_dir: Path, target: Path, dry_run: bool, log: Callable[[str], None]) -> str | None:
    """The set's file taken from the user's directory; None when the directory has no file of that name."""
    src = source_dir / s.file_name
    if not src.is_file():
        return None
    actual = sha256_file(src)
    if s.sha256 != UNPINNED and actual != s.sha256:
        log(f"fetch prompts: {_refusal(s, src, actual)}")
        return f"bad hash: {src} has {actual[:16]}…, refused"
    if dry_run:
        return f"would copy from {src}"
    _copy_in(src, target)
    return COPIED


def _download(s: PromptSet, target: Path, mirror: str | None, dry_run: bool, log: Callable[[str], None]) -> str:
    if not s.downloadable:
        return f"{MISSING}: {s.repo} has no licence, never downloaded; give --from DIR with {s.file_name} ({s.path})"
    if dry_run:
        return f"{MISSING} (would download)"
    url = source_url(FileSpec(s.file_name, None, url=s.raw_url), mirror)
    log(f"fetch prompts: {url} -> {target}")
    try:
        download(url, target, None if s.sha256 == UNPINNED else s.sha256)
    except HashMismatch as exc:
        log(f"fetch prompts: prompt set {s.name!r}: {url} has sha256 {exc.actual}, expected {exc.expected}; refused")
        return f"bad hash: got {exc.actual[:16]}…, refused"
    except FetchError as exc:
        return f"failed: {exc}"
    return FETCHED


def fetch_one(s: PromptSet, source_dir: Path | None, mirror: str | None, dry_run: bool, log: Callable[[str], None]) -> Row:
    """One set's file into the cache: kept when it checks out, else from `source_dir` when given, else downloaded."""
    target = prompt_set_dir() / s.file_name
    row = Row(s.name, target, "", s.commit[:12], f"sha256 {s.sha256}", _cached_status(s, target, dry_run, log))
    if row.status != OK:
        if source_dir is None:
            row.status = _download(s, target, mirror, dry_run, log)
        else:
            taken = _from_dir(s, source_dir, target, dry_run, log)
            row.status = taken or (row.status if row.status != MISSING else f"{MISSING}: no {s.file_name} in {source_dir}")
    if target.is_file():
        row.size = f"{target.stat().st_size} B"
    return row


def fetch_prompts(names: list[str] | None = None, suite: str | None = None, source_dir: str | None = None,
                  mirror: str | None = None, dry_run: bool = False, echo: Callable[[str], None] = print,
                  log: Callable[[str], None] | None = None) -> int:
    """Check (and unless dry_run, get) the prompt sets named (default: a suite's, else every set); echo the table;
    0 when every one is in the cache and checks out."""
    log = log or (lambda msg: None)
    if suite is not None:
        names = (names or []) + suite_prompt_sets(suite)
        if not names:
            echo(f"suite {suite!r} names no prompt set")
            return 0
    directory = Path(source_dir).expanduser() if source_dir else None
    if directory is not None and not directory.is_dir():
        raise FetchError(f"--from {source_dir}: not a directory")
    rows = [fetch_one(s, directory, mirror, dry_run, log) for s in files_for(names)]
    echo(render(rows))
    failed = [r for r in rows if r.status not in (OK, FETCHED, COPIED)]
    echo(f"{len(rows)} prompt-set files in {prompt_set_dir()}: {sum(r.status == OK for r in rows)} ok, "
         f"{sum(r.status in (FETCHED, COPIED) for r in rows)} fetched, {len(failed)} {'not there' if dry_run else 'failed'}"
         + ("" if not failed or dry_run else f"; see each row (`{FETCH_PROMPTS} --from DIR` reads a directory of yours)"))
    return 1 if failed else 0
