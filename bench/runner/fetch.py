"""`unlearn-bench fetch`: every weight file and data set a suite's tasks need (bench/core/fetch_registry.py), at
their pinned revisions, into the caches the loaders read; each file's sha256 checked; a table of what, where,
size, revision / hash and status.

- A file already present is hashed (once: its size and mtime are memoised in the lock file) and never
  downloaded again; when everything is present nothing is downloaded.
- Plain files stream into a temporary file beside their destination, hashed on the way, and are renamed into
  place only when the hash matches; on a mismatch or an interruption (an error, Ctrl-C) the temporary file is
  removed. Hugging Face files go through huggingface_hub (its own temporary file and rename into its cache,
  `revision=` the pinned commit); the result is hashed and, when wrong, its blob and snapshot link are removed.
- A file without a pinned hash is trust-on-first-fetch: the hash of its first download is recorded in the
  lock file ($UNLEARN_BENCH_CACHE/fetch-lock.json) and checked ever after.
- Sources: `--mirror URL|DIR` replaces the directory of every URL file (a local directory or file:// URL:
  files under their own names); `--hf-endpoint URL` (or $HF_ENDPOINT) a Hub-compatible server for the
  Hugging Face files.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from bench.core.atomic import write_text_atomic
from bench.core.cache import cache_root
from bench.core.errors import BenchError
from bench.core.fetch_registry import ARTIFACTS, Artifact, FileSpec, get_artifact

LOCK_NAME = "fetch-lock.json"
TMP_PREFIX = ".tmp-fetch-"  # bench/core/atomic.TMP_PREFIX + "fetch-": readers that scan directories skip it
STALE_TMP_S = 600  # a temporary file nobody has written for this long belongs to a killed fetch: swept
CHUNK = 1 << 20
TIMEOUT_S = 60.0

OK, FETCHED, MISSING, BAD = "ok", "fetched", "missing", "bad hash"


class FetchError(BenchError):
    pass


class HashMismatch(FetchError):
    def __init__(self, name: str, algo: str, expected: str, actual: str):
        super().__init__(f"{name}: {algo} {actual} does not match the expected {expected}; refused and removed")
        self.expected, self.actual = expected, actual


@dataclass
class Row:
    what: str
    where: Path
    size: str
    revision: str
    sha256: str
    status: str

    @property
    def failed(self) -> bool:
        return self.status not in (OK, FETCHED)


# -- what a suite needs -------------------------------------------------------------------------------------------
def suite_artifacts(suite_name: str, registry: dict[str, Artifact] | None = None) -> list[Artifact]:
    """The artifacts the suite's tasks name (Task.required_artifacts, with the suite's options), in first-use order."""
    from bench.runner.field_types import check_fields
    from bench.runner.plan import load_suite
    from tasks.base import TASKS

    suite = load_suite(suite_name)
    names: list[str] = []
    for te in suite.tasks:
        task_cls = TASKS.get(te.task)
        task = task_cls.make(check_fields(task_cls.Config, te.options, f"task {te.task!r} options"))
        names += [n for n in task.required_artifacts() if n not in names]
    return [get_artifact(n, registry) for n in names]


# -- hashing and the lock file ------------------------------------------------------------------------------------
def file_hashes(path: Path, md5: bool = False) -> tuple[str, str | None]:
    h, m = hashlib.sha256(), (hashlib.md5(usedforsecurity=False) if md5 else None)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
            if m is not None:
                m.update(block)
    return h.hexdigest(), (m.hexdigest() if m is not None else None)


def git_blob_sha1(path: Path) -> str:
    """The git object id of a file's bytes (what the Hub's etag is for a file not stored in LFS)."""
    h = hashlib.sha1(f"blob {path.stat().st_size}\0".encode(), usedforsecurity=False)
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


class Lock:
    """{key: {sha256, size, mtime_ns}}: the hash recorded on first fetch (files without a pinned one) and the
    stat of the last verified copy (so a present file is hashed once)."""

    def __init__(self, path: Path, writable: bool):
        self.path, self.writable, self.dirty = path, writable, False
        try:
            self.files: dict = json.loads(path.read_text()).get("files", {})
        except FileNotFoundError:
            self.files = {}
        except (ValueError, AttributeError, OSError) as exc:
            raise FetchError(f"fetch lock file {path} is unreadable ({exc}); move it away to start over") from None

    def recorded(self, key: str) -> str | None:
        return (self.files.get(key) or {}).get("sha256")

    def digest(self, key: str, path: Path) -> str:
        """sha256 of the file, from the memo when its size and mtime are the ones last verified."""
        st = path.stat()
        entry = self.files.get(key) or {}
        if entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns and entry.get("path") == str(path):
            return entry["sha256"]
        return file_hashes(path)[0]

    def note(self, key: str, path: Path, sha256: str) -> None:
        st = path.stat()
        entry = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "path": str(path)}
        if self.files.get(key) != entry:
            self.files[key] = entry
            self.dirty = True

    def forget(self, key: str) -> None:
        entry = self.files.get(key)
        if entry is not None and "path" in entry:  # keep a recorded hash, drop the stat of a copy that is gone
            self.files[key] = {"sha256": entry["sha256"]}
            self.dirty = True

    def save(self) -> None:
        if self.writable and self.dirty:
            write_text_atomic(self.path, json.dumps({"version": 1, "files": self.files}, indent=1, sort_keys=True) + "\n")
            self.dirty = False


# -- downloading ----------------------------------------------------------------------------------------------------
def _open(url: str, timeout: float):
    return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 - http(s) or file URLs the user chose


def source_url(f: FileSpec, mirror: str | None) -> str:
    """The file's URL, or the mirror's: a directory (path or file:// URL) or a base URL holding the file by its name."""
    if not mirror:
        return f.url
    if "://" not in mirror:
        return Path(mirror).expanduser().resolve().joinpath(f.path).as_uri()
    return mirror.rstrip("/") + "/" + urllib.parse.quote(f.path)


def download(url: str, target: Path, sha256: str | None, md5: str | None = None, timeout: float = TIMEOUT_S) -> str:
    """Stream `url` to a temporary file beside `target`, hashing it; rename it into place only if the hashes match.

    Returns the sha256. HashMismatch when a hash differs, FetchError when the transfer fails; in every failure,
    Ctrl-C included, the temporary file is removed and `target` is untouched."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=TMP_PREFIX, suffix=".part")
    try:
        h, m, n = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
        with os.fdopen(fd, "wb") as out:
            try:
                with _open(url, timeout) as resp:
                    length = resp.headers.get("Content-Length") if getattr(resp, "headers", None) is not None else None
                    while chunk := resp.read(CHUNK):
                        out.write(chunk)
                        h.update(chunk)
                        m.update(chunk)
                        n += len(chunk)
            except (OSError, ValueError) as exc:  # URLError, timeouts, a connection closed half-way (IncompleteRead)
                raise FetchError(f"{target.name}: download from {url} failed after {n} bytes: {_reason(exc)}") from None
            except Exception as exc:  # noqa: BLE001 - http.client.HTTPException and kin: the transfer broke
                raise FetchError(f"{target.name}: download from {url} failed after {n} bytes: {_reason(exc)}") from None
            if length is not None and n != int(length):
                raise FetchError(f"{target.name}: download from {url} interrupted: {n} of {length} bytes")
            out.flush()
            os.fsync(out.fileno())
        actual = h.hexdigest()
        if sha256 is not None and actual != sha256:
            raise HashMismatch(target.name, "sha256", sha256, actual)
        if md5 is not None and m.hexdigest() != md5:
            raise HashMismatch(target.name, "md5", md5, m.hexdigest())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
        return actual
    finally:
        Path(tmp).unlink(missing_ok=True)  # no-op after the rename


def _reason(exc: BaseException) -> str:
    text = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text.splitlines()[0]}"


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def sweep_stale_temporaries(directory: Path, now: float | None = None) -> None:
    """Remove the temporary files of fetches that were killed (no write for STALE_TMP_S)."""
    now = time.time() if now is None else now
    if directory.is_dir():
        for p in directory.glob(TMP_PREFIX + "*"):
            try:
                if now - p.stat().st_mtime > STALE_TMP_S:
                    shutil.rmtree(p) if p.is_dir() else p.unlink()
            except OSError:
                pass


# -- the table ----------------------------------------------------------------------------------------------------
def human_size(n: int | None, expected: bool = False) -> str:
    if n is None:
        return "?"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            text = f"{n / scale:.2f} {unit}" if unit == "GB" else f"{n / scale:.0f} {unit}"
            break
    else:
        text = f"{n} B"
    return f"({text})" if expected else text


def hash_text(f: FileSpec, recorded: str | None) -> str:
    if f.sha256:
        return f"sha256 {f.sha256}"
    if recorded:
        return f"sha256 {recorded} (recorded on first fetch)"
    return "unpinned (recorded on first fetch)"


def render(rows: list[Row]) -> str:
    header = ("what", "where", "size", "revision", "sha256", "status")
    cells = [header] + [(r.what, str(r.where), r.size, r.revision, r.sha256, r.status) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header) - 1)]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(header) - 1)) + "  " + c[-1] for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * len("status"))
    return "\n".join(lines)


# -- fetching -----------------------------------------------------------------------------------------------------
class Fetcher:
    def __init__(self, dry_run: bool = False, mirror: str | None = None, hf_endpoint: str | None = None,
                 hf_cache: str | Path | None = None, lock_path: Path | None = None, log: Callable[[str], None] | None = None):
        from huggingface_hub import constants

        self.dry_run, self.mirror, self.hf_endpoint = dry_run, mirror, hf_endpoint
        self.hf_cache = Path(hf_cache) if hf_cache is not None else Path(constants.HF_HUB_CACHE)
        self.lock = Lock(lock_path or cache_root() / LOCK_NAME, writable=not dry_run)
        self.log = log or (lambda msg: None)

    def run(self, artifacts: Iterable[Artifact]) -> list[Row]:
        rows: list[Row] = []
        try:
            for art in artifacts:
                if art.kind == "hf-repo-snapshot":
                    rows += self._hf(art)
                elif art.kind == "url-file":
                    rows += [self._url_file(art, f) for f in art.files]
                else:
                    rows += self._dataset(art)
        finally:
            self.lock.save()
        return rows

    # present files ------------------------------------------------------------------------------------------------
    def _check_present(self, key: str, path: Path, f: FileSpec) -> tuple[str, str | None]:
        """(status, actual sha256) of a file on disk: OK or BAD (the caller records an OK one)."""
        actual = self.lock.digest(key, path)
        expected = f.sha256 or self.lock.recorded(key)
        return (BAD if expected is not None and actual != expected else OK), actual

    # Hugging Face ------------------------------------------------------------------------------------------------
    def _hf(self, art: Artifact) -> list[Row]:
        repo_dir = self.hf_cache / ("models--" + art.repo_id.replace("/", "--"))
        snapshot = repo_dir / "snapshots" / art.revision
        rows = []
        for f in art.files:
            key = f"{art.name}@{art.revision}/{f.path}"
            path = snapshot / f.path
            rows.append(Row(f"{art.name}: {f.path}", path, "", art.revision, hash_text(f, self.lock.recorded(key)), ""))
            status = MISSING
            if path.is_symlink() and not path.exists() and not self.dry_run:
                path.unlink()  # a snapshot link whose blob is gone: huggingface_hub would not replace it
            if path.exists():
                status, actual = self._check_present(key, path, f)
                blob = path.resolve().name
                if status == OK and len(blob) == 64 and blob != actual:  # an LFS blob is named by its sha256
                    status = BAD
                if status == OK:
                    self.lock.note(key, path, actual)
                else:
                    self.log(f"fetch: {path} has sha256 {actual}, not {f.sha256 or self.lock.recorded(key)}")
                    if not self.dry_run:
                        _remove_hf_file(path)
                        self.lock.forget(key)
            if status != OK and not self.dry_run:
                status = self._hf_download(art, f, key, path)
            rows[-1].status = status
            rows[-1].size = human_size(path.stat().st_size) if path.exists() else human_size(f.size, expected=True)
            rows[-1].sha256 = hash_text(f, self.lock.recorded(key))
        if not self.dry_run and all(r.status in (OK, FETCHED) for r in rows):
            _point_main_at(repo_dir, art.revision)  # the loaders resolve the hub id's `main` offline
        return rows

    def _hf_download(self, art: Artifact, f: FileSpec, key: str, path: Path) -> str:
        from huggingface_hub import constants, hf_hub_download

        if constants.is_offline_mode():
            return "failed: HF_HUB_OFFLINE is set; unset it to fetch"
        self.log(f"fetch: {art.repo_id}@{art.revision[:12]} {f.path} -> {self.hf_cache}")
        try:
            got = Path(hf_hub_download(art.repo_id, f.path, revision=art.revision, cache_dir=self.hf_cache,
                                       endpoint=self.hf_endpoint))
        except Exception as exc:  # noqa: BLE001 - network, HTTP, disk: the row says what
            return f"failed: {_reason(exc)}"
        actual = file_hashes(got)[0]
        blob = got.resolve()
        served = blob.name if blob != got.absolute() else None  # the Hub's etag names the blob
        expected = f.sha256 or self.lock.recorded(key)
        problem = None
        if served is not None and len(served) == 64 and served != actual:
            problem = f"sha256 {actual} is not the {served} the server announced"
        elif served is not None and len(served) == 40 and served != git_blob_sha1(got):
            problem = f"git object id {git_blob_sha1(got)} is not the {served} the server announced"
        elif expected is not None and actual != expected:
            problem = f"sha256 {actual} does not match the expected {expected}"
        if problem:
            _remove_hf_file(got)
            self.log(f"fetch: {art.repo_id} {f.path}: {problem}; refused and removed")
            return f"{BAD}: got {actual[:16]}…, removed"
        self.lock.note(key, path, actual)
        return FETCHED

    # plain URL files ------------------------------------------------------------------------------------------------
    def _url_file(self, art: Artifact, f: FileSpec, where: Path | None = None) -> Row:
        target = art.dest() / f.path
        key = f"{art.name}/{f.path}"
        row = Row(f"{art.name}: {f.path}", where or target, "", "-", hash_text(f, self.lock.recorded(key)), MISSING)
        if target.exists():
            row.status, actual = self._check_present(key, target, f)
            if row.status == OK:
                self.lock.note(key, target, actual)
            else:
                self.log(f"fetch: {target} has sha256 {actual}, not {f.sha256 or self.lock.recorded(key)}")
                if not self.dry_run:
                    target.unlink()
                    self.lock.forget(key)
        if row.status != OK and not self.dry_run:
            sweep_stale_temporaries(target.parent)
            url = source_url(f, self.mirror)
            self.log(f"fetch: {url} -> {target}")
            try:
                actual = download(url, target, f.sha256 or self.lock.recorded(key), f.md5)
            except HashMismatch as exc:
                self.log(f"fetch: {exc}")
                row.status = f"{BAD}: got {exc.actual[:16]}…, removed"
            except FetchError as exc:
                row.status = f"failed: {exc}"
            else:
                self.lock.note(key, target, actual)
                row.status = FETCHED
        row.size = human_size(target.stat().st_size) if target.exists() else human_size(f.size, expected=True)
        row.sha256 = hash_text(f, self.lock.recorded(key))
        return row

    # archives unpacked in torchvision's layout ----------------------------------------------------------------------
    def _dataset(self, art: Artifact) -> list[Row]:
        root = art.dest()
        folder = root / art.extract_to
        rows = []
        for f in art.files:
            if _members_ok(art, folder):
                key = f"{art.name}/{f.path}"
                size = (root / f.path).stat().st_size if (root / f.path).exists() else f.size
                rows.append(Row(f"{art.name}: {f.path} (extracted)", folder, human_size(size), "-",
                                hash_text(f, self.lock.recorded(key)), OK))
                continue
            row = self._url_file(art, f, where=folder)
            if not self.dry_run and row.status in (OK, FETCHED):
                try:
                    _extract(root / f.path, root, art.extract_to)
                except (OSError, tarfile.TarError) as exc:
                    row.status = f"failed: extracting {f.path}: {_reason(exc)}"
                else:
                    if not _members_ok(art, folder):
                        row.status = f"failed: {folder} does not check out after extracting {f.path}"
                    else:
                        row.status = FETCHED
            elif self.dry_run and row.status == OK:
                row.status = f"{MISSING} (archive present, not extracted)"
            rows.append(row)
        return rows


def _remove_hf_file(pointer: Path) -> None:
    """A Hugging Face cache entry: its snapshot link and the blob it points to."""
    blob = pointer.resolve()
    pointer.unlink(missing_ok=True)
    if blob != pointer.absolute():
        blob.unlink(missing_ok=True)


def _point_main_at(repo_dir: Path, revision: str) -> None:
    ref = repo_dir / "refs" / "main"
    if not ref.is_file() or ref.read_text().strip() != revision:
        write_text_atomic(ref, revision)


def _members_ok(art: Artifact, folder: Path) -> bool:
    """The extracted files check out: each member's md5 (the artifact's list, e.g. torchvision's own), else the folder
    is not empty."""
    if not folder.is_dir():
        return False
    members = art.members() if art.members is not None else None
    if members is None:
        return any(folder.iterdir())
    for rel, md5 in members:
        p = folder / rel
        if not p.is_file() or file_hashes(p, md5=True)[1] != md5:
            return False
    return True


def _extract(archive: Path, root: Path, folder_name: str) -> None:
    """Unpack into a temporary folder beside the destination, then rename its `folder_name` into place."""
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=TMP_PREFIX))
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        src = tmp / folder_name
        if not src.is_dir():
            raise tarfile.TarError(f"{archive.name} has no {folder_name}/")
        dest = root / folder_name
        if dest.exists():
            shutil.rmtree(dest)  # an incomplete or corrupted copy (it did not check out)
        os.replace(src, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch_suite(suite: str = "paper", dry_run: bool = False, mirror: str | None = None, hf_endpoint: str | None = None,
                hf_cache: str | Path | None = None, registry: dict[str, Artifact] | None = None,
                echo: Callable[[str], None] = print, log: Callable[[str], None] | None = None) -> int:
    """Check (and unless dry_run, fetch) what the suite needs; echo the table; 0 when every file is there and checks out."""
    artifacts = suite_artifacts(suite, registry if registry is not None else ARTIFACTS)
    if not artifacts:
        echo(f"suite {suite!r}: nothing to fetch (its tasks read only what ships with the package)")
        return 0
    rows = Fetcher(dry_run, mirror, hf_endpoint, hf_cache, log=log).run(artifacts)
    echo(render(rows))
    failed = [r for r in rows if r.failed]
    fetched = sum(r.status == FETCHED for r in rows)
    verb = "would fetch" if dry_run else "failed"
    echo(f"{len(rows)} files: {sum(r.status == OK for r in rows)} ok, {fetched} fetched, {len(failed)} {verb}"
         + ("" if dry_run or not failed else "; re-run `unlearn-bench fetch` to retry"))
    return 1 if failed else 0
