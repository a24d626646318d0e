"""Run records: one JSON file per job, written atomically; the leaderboard reads them back."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

RECORD_DIR = "records"


def record_path(out_dir, job_id: str) -> Path:
    return Path(out_dir) / RECORD_DIR / f"{job_id}.json"


def write_record(out_dir, record: dict) -> Path:
    """Temp file in the same directory + rename: a reader never sees half a record."""
    path = record_path(out_dir, record["job_id"])
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".json")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(record, f, indent=2, sort_keys=True, default=str)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_record(path) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError):
        return None


def iter_records(out_dir) -> Iterator[dict]:
    """Every readable record under out_dir (records/ or any nested results tree)."""
    root = Path(out_dir)
    for path in sorted(root.rglob("*.json")):
        if path.name.startswith(".tmp-") or path.parent.name != RECORD_DIR:
            continue
        rec = read_record(path)
        if rec and "job_id" in rec and "status" in rec:
            yield rec


def finished_ok(out_dir, job_id: str) -> bool:
    rec = read_record(record_path(out_dir, job_id))
    return bool(rec and rec.get("status") == "ok")
