"""`unlearn-bench fetch` against sources on this machine only: a loopback HTTP server the test starts and stops (plain
files, and the two Hub endpoints huggingface_hub's own download code calls), and file:// mirrors. Success, re-run,
hash mismatch, interruption, trust-on-first-fetch, the paper suite's dry-run listing, and missing-weights errors as
one line naming the fetch command."""
from __future__ import annotations

import hashlib
import io
import socket
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import bench.core.fetch_registry as reg
from bench.cli import main
from bench.core.errors import MissingDataError, MissingWeightsError
from bench.core.fetch_registry import FETCH_COMMAND, Artifact, FileSpec
from bench.runner import fetch as fetch_mod
from bench.runner.fetch import Fetcher, fetch_suite

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = "tiny-org/tiny-model"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Source:
    """Files served on 127.0.0.1: /files/<name> (plain) and /<repo>/resolve/<commit>/<path> (Hub-style, with the
    headers huggingface_hub reads: X-Repo-Commit, ETag = sha256 for weight files and the git object id otherwise).
    `truncate`: names whose body stops half-way (the connection closes); `requests`: every request path."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.hub: dict[str, bytes] = {}
        self.truncate: set[str] = set()
        self.requests: list[str] = []
        source = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _lookup(self):
                path = self.path.split("?")[0]
                if path.startswith("/files/"):
                    name = path[len("/files/"):]
                    return name, source.files.get(name), {}
                prefix = f"/{REPO}/resolve/{COMMIT}/"
                if path.startswith(prefix):
                    name = path[len(prefix):]
                    data = source.hub.get(name)
                    if data is None:
                        return name, None, {"X-Repo-Commit": COMMIT}
                    etag = sha256(data) if name.endswith(".safetensors") else git_sha1(data)
                    return name, data, {"X-Repo-Commit": COMMIT, "ETag": f'"{etag}"'}
                return path, None, {}

            def _head(self, status, data, headers):
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data) if data is not None else 0))
                self.end_headers()

            def do_HEAD(self):
                source.requests.append("HEAD " + self.path)
                name, data, headers = self._lookup()
                self._head(200 if data is not None else 404, data, headers)

            def do_GET(self):
                source.requests.append("GET " + self.path)
                name, data, headers = self._lookup()
                if data is None or self.headers.get("Range"):  # a resumed download after a cut: refused, no retry loop
                    self._head(404 if data is None else 500, b"", headers)
                    return
                self._head(200, data, headers)
                if name in source.truncate:
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def source():
    s = Source()
    yield s
    s.close()


@pytest.fixture
def caches(tmp_path, monkeypatch):
    """The suite's cache and the HF hub cache under tmp; huggingface_hub online (it talks only to the test's server)."""
    from huggingface_hub import constants

    monkeypatch.setenv("UNLEARN_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("UNLEARN_BENCH_DATA", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr("huggingface_hub.file_download.time.sleep", lambda s: None)  # its retry pause after a cut
    return {"cache": tmp_path / "cache", "hf": tmp_path / "hf"}


WEIGHTS = b"\x00weights\x01" * 5000
CONFIG = b'{"tiny": true}\n'
PLAIN = b"inception bytes " * 3000
BATCH = b"a data batch " * 1000


def tarball(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


ARCHIVE = tarball({"tiny-batches/data_1": BATCH, "tiny-batches/meta": CONFIG})


def tiny_registry(cache: Path, *, weights_sha=None, plain_sha=None, config_sha=None) -> dict[str, Artifact]:
    """The paper suite's four names, each a tiny artifact of the same kind; hashes computed here, injected."""
    return {
        reg.SD14_ARTIFACT: Artifact(reg.SD14_ARTIFACT, "hf-repo-snapshot", "tiny hub model",
                                    (FileSpec("config.json", config_sha), FileSpec("unet/weights.safetensors", weights_sha or sha256(WEIGHTS))),
                                    repo_id=REPO, revision=COMMIT),
        reg.OPENCLIP_ARTIFACT: Artifact(reg.OPENCLIP_ARTIFACT, "url-file", "tiny judge",
                                        (FileSpec("judge.bin", sha256(CONFIG), url="http://127.0.0.1:9/nowhere/judge.bin"),),
                                        dest=lambda: cache / "judge"),
        reg.INCEPTION_ARTIFACT: Artifact(reg.INCEPTION_ARTIFACT, "url-file", "tiny inception",
                                         (FileSpec("inception.pt", plain_sha or sha256(PLAIN), url="http://127.0.0.1:9/nowhere/inception.pt"),),
                                         dest=lambda: cache / "inception"),
        reg.CIFAR10_ARTIFACT: Artifact(reg.CIFAR10_ARTIFACT, "torchvision-dataset", "tiny data set",
                                       (FileSpec("tiny.tar.gz", sha256(ARCHIVE), url="http://127.0.0.1:9/nowhere/tiny.tar.gz",
                                                 md5=hashlib.md5(ARCHIVE).hexdigest()),),
                                       dest=lambda: cache / "data", extract_to="tiny-batches",
                                       members=lambda: [("data_1", hashlib.md5(BATCH).hexdigest()), ("meta", hashlib.md5(CONFIG).hexdigest())]),
    }


def serve_all(source: Source):
    source.hub.update({"config.json": CONFIG, "unet/weights.safetensors": WEIGHTS})
    source.files.update({"judge.bin": CONFIG, "inception.pt": PLAIN, "tiny.tar.gz": ARCHIVE})


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(fetch_mod.TMP_PREFIX) or p.name.endswith(".incomplete")]


def test_fetch_success_then_rerun_does_nothing(source, caches, monkeypatch, capsys):
    serve_all(source)
    for name, art in tiny_registry(caches["cache"]).items():
        monkeypatch.setitem(reg.ARTIFACTS, name, art)
    argv = ["fetch", "--suite", "paper", "--mirror", source.url + "/files", "--hf-endpoint", source.url]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert sum(line.endswith("  fetched") for line in out.splitlines()) == 5 and "5 files: 0 ok, 5 fetched, 0 failed" in out
    # where the loaders look: the hub id's `main` resolves offline to the pinned snapshot
    from huggingface_hub import hf_hub_download, snapshot_download

    got = hf_hub_download(REPO, "unet/weights.safetensors", local_files_only=True, cache_dir=caches["hf"])
    assert Path(got).read_bytes() == WEIGHTS and Path(snapshot_download(REPO, local_files_only=True, cache_dir=caches["hf"])).name == COMMIT
    assert (caches["cache"] / "inception" / "inception.pt").read_bytes() == PLAIN
    assert (caches["cache"] / "data" / "tiny-batches" / "data_1").read_bytes() == BATCH
    lock = (caches["cache"] / fetch_mod.LOCK_NAME).read_text()
    assert sha256(CONFIG) in lock  # config.json had no pinned hash: recorded on first fetch
    source.requests.clear()
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert source.requests == [] and "5 files: 5 ok, 0 fetched, 0 failed" in out and not leftovers(caches["cache"].parent)


def test_hash_mismatch_refused_and_removed(source, caches):
    serve_all(source)
    arts = tiny_registry(caches["cache"], weights_sha="1" * 64, plain_sha="2" * 64)
    rows = Fetcher(mirror=source.url + "/files", hf_endpoint=source.url).run([arts[reg.SD14_ARTIFACT], arts[reg.INCEPTION_ARTIFACT]])
    status = {r.what: r.status for r in rows}
    assert status[f"{reg.SD14_ARTIFACT}: config.json"] == "fetched"
    assert status[f"{reg.SD14_ARTIFACT}: unet/weights.safetensors"].startswith("bad hash")
    assert status[f"{reg.INCEPTION_ARTIFACT}: inception.pt"].startswith("bad hash")
    assert not (caches["cache"] / "inception" / "inception.pt").exists()
    blobs = list((caches["hf"] / "models--tiny-org--tiny-model" / "blobs").iterdir())
    assert sha256(WEIGHTS) not in {b.name for b in blobs}  # the blob and its snapshot link are gone
    assert not (caches["hf"] / "models--tiny-org--tiny-model" / "snapshots" / COMMIT / "unet" / "weights.safetensors").is_symlink()
    assert not (caches["hf"] / "models--tiny-org--tiny-model" / "refs" / "main").exists()  # incomplete: main not moved
    assert not leftovers(caches["cache"].parent)


def test_interrupted_downloads_leave_no_half_file(source, caches, monkeypatch):
    serve_all(source)
    source.truncate |= {"inception.pt", "unet/weights.safetensors"}
    arts = tiny_registry(caches["cache"])
    rows = Fetcher(mirror=source.url + "/files", hf_endpoint=source.url).run([arts[reg.SD14_ARTIFACT], arts[reg.INCEPTION_ARTIFACT]])
    status = {r.what: r.status for r in rows}
    assert status[f"{reg.INCEPTION_ARTIFACT}: inception.pt"].startswith("failed:")
    assert status[f"{reg.SD14_ARTIFACT}: unet/weights.safetensors"].startswith("failed:")
    assert not (caches["cache"] / "inception" / "inception.pt").exists()
    assert not (caches["hf"] / "models--tiny-org--tiny-model" / "snapshots" / COMMIT / "unet" / "weights.safetensors").exists()
    assert not [b for b in (caches["hf"] / "models--tiny-org--tiny-model" / "blobs").iterdir() if b.stat().st_size == len(WEIGHTS) // 2]
    assert not leftovers(caches["cache"].parent)

    class Cut:  # Ctrl-C in the middle of a transfer
        headers: dict = {}

        def __init__(self):
            self.sent = False

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self, n):
            if self.sent:
                raise KeyboardInterrupt
            self.sent = True
            return PLAIN[:100]

    monkeypatch.setattr(fetch_mod, "_open", lambda url, timeout: Cut())
    with pytest.raises(KeyboardInterrupt):
        Fetcher(mirror=source.url + "/files").run([arts[reg.INCEPTION_ARTIFACT]])
    assert not (caches["cache"] / "inception" / "inception.pt").exists() and not leftovers(caches["cache"].parent)


def test_trust_on_first_fetch_and_local_mirror(source, caches, tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "inception.pt").write_bytes(PLAIN)
    art = Artifact("plain", "url-file", "unpinned", (FileSpec("inception.pt", None, url="http://127.0.0.1:9/x/inception.pt"),),
                   dest=lambda: caches["cache"] / "plain")
    assert Fetcher(mirror=str(mirror)).run([art])[0].status == "fetched"  # from a local directory
    target = caches["cache"] / "plain" / "inception.pt"
    target.write_bytes(b"tampered")
    (mirror / "inception.pt").write_bytes(b"something else")
    row = Fetcher(mirror=mirror.as_uri()).run([art])[0]  # the recorded hash holds: the new bytes are refused
    assert row.status.startswith("bad hash") and not target.exists() and sha256(PLAIN) in row.sha256
    (mirror / "inception.pt").write_bytes(PLAIN)
    assert Fetcher(mirror=mirror.as_uri()).run([art])[0].status == "fetched" and target.read_bytes() == PLAIN


def test_paper_dry_run_lists_every_file_and_touches_nothing(tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setenv("UNLEARN_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))

    def no_network(*args, **kwargs):
        raise AssertionError("a dry run opened a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    lines: list[str] = []
    assert fetch_suite("paper", dry_run=True, echo=lines.append) == 1  # everything is missing here
    table = "\n".join(lines)
    lines = table.splitlines()
    for name in (reg.SD14_ARTIFACT, reg.OPENCLIP_ARTIFACT, reg.INCEPTION_ARTIFACT, reg.CIFAR10_ARTIFACT):
        art = reg.ARTIFACTS[name]
        for f in art.files:
            row = next(line for line in lines if line.startswith(f"{name}: {f.path} "))
            assert "missing" in row
            assert (f.sha256 in row) if f.sha256 else ("unpinned (recorded on first fetch)" in row)
            if art.revision:
                assert art.revision in row
    assert reg.SD14_REVISION in table and "15 files" in table
    assert not (tmp_path / "cache").exists() and not (tmp_path / "hf").exists()
    lines.clear()
    assert fetch_suite("mini", dry_run=True, echo=lines.append) == 0 and "nothing to fetch" in lines[0]


def test_missing_weights_are_one_line_naming_the_fetch_command(tmp_path, monkeypatch, capsys):
    from huggingface_hub import constants

    from bench.core.adapters.text_to_image import SD14, TextToImageModel
    from metrics.alignment import OpenClipJudge
    from metrics.inception_fid import resolve_inception_weights
    from tasks.cifar.data import load_cifar10

    monkeypatch.setenv("UNLEARN_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("UNLEARN_BENCH_INCEPTION", raising=False)
    monkeypatch.delenv("UNLEARN_BENCH_OPENCLIP_WEIGHTS", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr("metrics.inception_fid.inception_candidates", lambda explicit=None: [reg.inception_cache_path()])
    errors = []
    for make, kind in ((lambda: TextToImageModel.from_pretrained_sd(SD14), MissingWeightsError), (OpenClipJudge, MissingWeightsError),
                       (resolve_inception_weights, MissingWeightsError), (lambda: load_cifar10(None), MissingDataError)):
        with pytest.raises(kind) as e:
            make()
        errors.append(str(e.value))
    # a snapshot that lacks files: the first missing one is named
    repo = tmp_path / "hf" / "models--CompVis--stable-diffusion-v1-4"
    (repo / "snapshots" / reg.SD14_REVISION).mkdir(parents=True)
    (repo / "snapshots" / reg.SD14_REVISION / "model_index.json").write_text("{}")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(reg.SD14_REVISION)
    with pytest.raises(MissingWeightsError) as e:
        TextToImageModel._from_pretrained_sd_uncached(SD14)
    errors.append(str(e.value))
    named = ("CompVis/stable-diffusion-v1-4", str(tmp_path / "hf")), ("open_clip_model.safetensors",), \
            ("inception-2015-12-05.pt",), ("cifar-10-batches-py",), ("scheduler/scheduler_config.json", reg.SD14_REVISION)
    for msg, needles in zip(errors, named, strict=True):
        assert "\n" not in msg and FETCH_COMMAND in msg and all(n in msg for n in needles), msg
    # the command line: one line on stderr, no traceback
    capsys.readouterr()
    assert main(["pretrain", "cifar10", "--data-root", str(tmp_path / "nowhere"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("unlearn-bench: error: CIFAR-10 not found") and FETCH_COMMAND in err[0]


def test_a_job_records_the_missing_weights_as_its_one_line_cause(tmp_path, monkeypatch):
    from huggingface_hub import constants

    from bench.runner.job import run_job
    from bench.runner.plan import JobSpec

    monkeypatch.setenv("UNLEARN_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    spec = JobSpec("test", "sd-nudity", {}, "nudity", "finetune", "finetune", {}, 0, {"max_steps": 1})
    rec = run_job(spec)
    assert rec["status"] == "failed" and rec["error_type"] == "MissingWeightsError"
    assert "\n" not in rec["error"] and FETCH_COMMAND in rec["error"] and "CompVis/stable-diffusion-v1-4" in rec["error"]
