"""The driver vouches for the records it writes; readers believe only what it vouched for.

A method runs arbitrary code as the same user as the harness. It is never told where results go
(bench/runner/method_process.py), but it could find `--out` and rewrite a record: any well-formed
file in `records/` used to be believed. So every record the harness writes gets an entry in its
directory's manifest, `records/.vouched.jsonl`:

- a header line `{"v": 1, "nonce", "key_id", "mac"}`: a random nonce per directory; the directory's
  key is HMAC-SHA256(user key, nonce), so an entry cannot be replayed into another directory;
- one line per write, `{"file", "sha256", "mac"}`, mac = HMAC-SHA256(directory key, file NUL sha256);
  a later line for the same file supersedes an earlier one (a failed job re-run).

The user key (32 random bytes) lives outside every results directory, in the user's state
directory (`$UNLEARN_BENCH_STATE`, else `$XDG_STATE_HOME/unlearn-bench`, else
`~/.local/state/unlearn-bench`; mode 0600). It is read by the harness processes that write records
(the driver; in-process jobs and tune trials) and never sent to a method's process, whose
environment loses `$UNLEARN_BENCH_STATE`. A reader checks each record file against the latest entry
with a valid mac for its name: `unknown` (no entry: not written by the harness, or by a version before
the manifest), `altered` (its content is not what was vouched for), `forged` (entries for it exist but
none carries this key's mac), or `foreign key` (the manifest was signed with another machine's key:
results copied from elsewhere; `--unvouched accept` uses them).

What this does not stop — a method that reads the user key from disk, which it can as the same
user where the kernel offers no sandbox — is stated in the README's threat model. Where it does
(bench/runner/sandbox.py, Landlock), a method's process may neither write records nor read this
state directory, which also lists every results directory vouched in (`results-dirs`), so that
method processes may read none of them either.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.core.errors import ConfigError

MANIFEST = ".vouched.jsonl"
KEY_FILE = "voucher.key"
RESULTS_LIST = "results-dirs"  # in the state directory: every results directory vouched in (method processes may read none)
STATE_ENV = "UNLEARN_BENCH_STATE"
ACCEPT_ENV = "UNLEARN_BENCH_UNVOUCHED"  # "accept": believe unvouched records too (the CLI's --unvouched accept)

_KEY: bytes | None = None
_REMEMBERED: set = set()


def state_dir() -> Path:
    if os.environ.get(STATE_ENV):
        return Path(os.environ[STATE_ENV]).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "unlearn-bench"


def user_key(create: bool = True) -> bytes | None:
    """This user's key (created on first use, 0600); None when absent and `create` is False."""
    global _KEY
    if _KEY is not None:
        return _KEY
    path = state_dir() / KEY_FILE
    try:
        _KEY = bytes.fromhex(path.read_text().strip())
        return _KEY
    except FileNotFoundError:
        if not create:
            return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"the record voucher key {path} is unreadable ({exc}); delete it to make a new one "
                          "(records vouched with it will then read as 'foreign key')") from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".key-")
        with os.fdopen(fd, "w") as fh:  # mkstemp: mode 0600
            fh.write(secrets.token_hex(32) + "\n")
        try:
            os.link(tmp, path)  # atomic: two processes creating it at once agree on one key
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
        _KEY = bytes.fromhex(path.read_text().strip())
    except OSError as exc:
        raise ConfigError(f"cannot create the record voucher key in {path.parent} ({exc.strerror or exc}); "
                          f"set {STATE_ENV} to a writable directory outside any results directory") from None
    return _KEY


def forget_key() -> None:
    """Drop the cached key (tests that switch state directories)."""
    global _KEY
    _KEY = None
    _REMEMBERED.clear()


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"unlearn-bench key id\0" + key).hexdigest()[:16]


def _mac(key: bytes, message: str) -> str:
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def _dir_key(key: bytes, nonce: str) -> bytes:
    return hmac.new(key, b"unlearn-bench records\0" + nonce.encode(), hashlib.sha256).digest()


def _header(key: bytes, nonce: str) -> dict:
    return {"v": 1, "nonce": nonce, "key_id": key_id(key), "mac": _mac(key, "header\0" + nonce)}


def _append(path: Path, line: dict) -> None:
    data = (json.dumps(line, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        os.write(fd, data)  # one write of < 4 KB with O_APPEND: concurrent writers never interleave a line
    finally:
        os.close(fd)


def _ensure_manifest(records_dir: Path, key: bytes) -> dict:
    """The directory's header (created atomically when the manifest does not exist yet)."""
    path = records_dir / MANIFEST
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=records_dir, prefix=".tmp-manifest-")
        with os.fdopen(fd, "w") as fh:
            fh.write(json.dumps(_header(key, secrets.token_hex(16)), sort_keys=True) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another writer made it first: use its nonce
        finally:
            os.unlink(tmp)
    header = _read_header(path)
    if header is None or header.get("key_id") != key_id(key) or not hmac.compare_digest(
            str(header.get("mac", "")), _mac(key, "header\0" + str(header.get("nonce", "")))):
        # written with another key (a copied directory) or damaged: start a new manifest; the old one is kept beside it
        os.replace(path, records_dir / f"{MANIFEST}.replaced-{secrets.token_hex(4)}")
        return _ensure_manifest(records_dir, key)
    return header


def _read_header(path: Path) -> dict | None:
    try:
        with open(path, "rb") as fh:
            first = fh.readline()
        header = json.loads(first)
        return header if isinstance(header, dict) and header.get("v") == 1 else None
    except (OSError, ValueError):
        return None


def vouch(path: Path, data: bytes) -> None:
    """Record that the harness wrote `data` to `path` (called right after the write)."""
    key = user_key()
    path = Path(path)
    _remember_results_dir(path.parent.parent)
    header = _ensure_manifest(path.parent, key)
    digest = hashlib.sha256(data).hexdigest()
    _append(path.parent / MANIFEST, {"file": path.name, "sha256": digest,
                                     "mac": _mac(_dir_key(key, header["nonce"]), f"{path.name}\0{digest}")})


def _remember_results_dir(results: Path) -> None:
    """List a results directory in the state directory, once: method processes may read none of them
    (bench/runner/sandbox.py: private_paths)."""
    results = Path(os.path.realpath(results))
    if results in _REMEMBERED:
        return
    try:
        if str(results) not in known_results_dirs():
            _append_line(state_dir() / RESULTS_LIST, str(results))
        _REMEMBERED.add(results)
    except OSError:
        pass


def _append_line(path: Path, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def known_results_dirs() -> list[str]:
    """Every results directory this user's harness has vouched in (that still exists)."""
    try:
        lines = (state_dir() / RESULTS_LIST).read_text().splitlines()
    except OSError:
        return []
    return sorted({ln for ln in lines if ln.strip() and os.path.isdir(ln)})


@dataclass
class Manifest:
    """One records directory's manifest as a reader sees it."""

    state: str  # "ok", "missing", "damaged", "foreign key"
    vouched: dict  # file name -> sha256 of the latest entry with a valid mac
    unsigned: set  # file names with entries, none of them with a valid mac


_MANIFESTS: dict = {}  # (path, size, mtime_ns, key id) -> Manifest: resume reads one per job


def read_manifest(records_dir: Path) -> Manifest:
    path = Path(records_dir) / MANIFEST
    try:
        st = path.stat()
    except FileNotFoundError:
        return Manifest("missing", {}, set())
    key = user_key(create=False)
    cache_key = (str(path), st.st_size, st.st_mtime_ns, key and key_id(key))
    if cache_key not in _MANIFESTS:
        if len(_MANIFESTS) > 64:
            _MANIFESTS.clear()
        _MANIFESTS[cache_key] = _read_manifest(path, key)
    return _MANIFESTS[cache_key]


def _read_manifest(path: Path, key: bytes | None) -> Manifest:
    header = _read_header(path)
    if header is None:
        return Manifest("damaged", {}, set())
    if key is None or header.get("key_id") != key_id(key):
        return Manifest("foreign key", {}, set())
    if not hmac.compare_digest(str(header.get("mac", "")), _mac(key, "header\0" + str(header.get("nonce", "")))):
        return Manifest("damaged", {}, set())
    dkey = _dir_key(key, str(header["nonce"]))
    vouched, seen = {}, set()
    with open(path, "rb") as fh:
        fh.readline()
        for raw in fh:
            try:
                entry = json.loads(raw)
                name, digest, mac = str(entry["file"]), str(entry["sha256"]), str(entry["mac"])
            except (ValueError, KeyError, TypeError):
                continue  # a torn or foreign line vouches for nothing
            seen.add(name)
            if hmac.compare_digest(mac, _mac(dkey, f"{name}\0{digest}")):
                vouched[name] = digest
    return Manifest("ok", vouched, seen - set(vouched))


def unvouched_accepted() -> bool:
    return os.environ.get(ACCEPT_ENV, "").strip().lower() == "accept"


def why_unvouched(path: Path, data: bytes, manifest: Manifest) -> str | None:
    """None when `data` (the bytes of the record file at `path`) is what the harness vouched for,
    else the reason it is not: the caller ignores the record and lists it with this reason."""
    name = Path(path).name
    if manifest.state == "missing":
        return f"unknown: no {MANIFEST} in its directory (not written by this suite's driver, or by a version without one)"
    if manifest.state == "damaged":
        return f"unknown: its directory's {MANIFEST} is damaged"
    if manifest.state == "foreign key":
        return (f"foreign key: its directory was vouched for with another key than this user's ({state_dir() / KEY_FILE}): "
                "results copied from elsewhere are used with --unvouched accept")
    digest = manifest.vouched.get(name)
    if digest is None:
        return "forged: its manifest entries do not carry this key's signature" if name in manifest.unsigned else \
            "unknown: the driver never wrote this file"
    if not hmac.compare_digest(digest, hashlib.sha256(data).hexdigest()):
        return "altered: its content is not what the driver wrote"
    return None
