"""Run records: one JSON file per job, written atomically; the leaderboard reads them back."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from bench.core.atomic import TMP_PREFIX, write_text_atomic
from bench.core.log import get_logger
from bench.core.record import SCHEMA_VERSION, RecordError, RunRecord, parse_record

RECORD_DIR = "records"
log = get_logger("records")


def record_path(out_dir, job_id: str) -> Path:
    return Path(out_dir) / RECORD_DIR / f"{job_id}.json"


def write_record(out_dir, record: dict) -> Path:
    """Temp file in the same directory + rename: a reader never sees half a record."""
    path = record_path(out_dir, record["job_id"])
    record = {"schema_version": SCHEMA_VERSION, **record}
    return write_text_atomic(path, json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")


def load_record(path) -> tuple[RunRecord | None, str | None]:
    """(record, None), or (None, why it is unusable): unreadable, not UTF-8, not JSON (e.g.
    truncated), or not a record (bench/core/record.py says why)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return None, "missing"
    except OSError as exc:
        return None, f"unreadable ({exc.strerror or exc})"
    try:
        rec = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        return None, "not valid UTF-8"
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON (truncated?): {exc.msg} at line {exc.lineno}"
    try:
        return parse_record(rec), None
    except RecordError as exc:
        return None, str(exc)


def warn_skipped(path, why: str) -> None:
    log.warning(f"unlearn-bench: warning: skipping record {path}: {why}")


def read_record(path, warn: bool = False) -> RunRecord | None:
    """The record at `path`, or None when there is none or it is unusable (so resume re-runs it)."""
    rec, why = load_record(path)
    if rec is None and warn and why != "missing":
        warn_skipped(path, why)
    return rec


def iter_records(out_dir) -> Iterator[RunRecord]:
    """Every usable record under out_dir (records/ or any nested results tree), each job once; each
    unusable or duplicate one is skipped with a one-line warning naming the file."""
    root = Path(out_dir)
    seen: dict[str, Path] = {}
    for path in sorted(root.rglob("*.json"), key=lambda p: (len(p.parts), p)):  # the run's own records/ first
        if path.name.startswith(TMP_PREFIX) or path.parent.name != RECORD_DIR:
            continue
        rec = read_record(path, warn=True)
        if rec is None:
            continue
        if rec.job_id in seen:  # e.g. a results tree copied inside another: one job is one measurement
            warn_skipped(path, f"a second record of job {rec.job_id} (counted once, from {seen[rec.job_id]})")
            continue
        seen[rec.job_id] = path
        yield rec


def finished_ok(out_dir, job_id: str) -> bool:
    """Resume: only a usable record with status 'ok' counts as done (others are warned about)."""
    rec = read_record(record_path(out_dir, job_id), warn=True)
    return bool(rec and rec.ok)
