"""Run records: one JSON file per job, written atomically; the leaderboard reads them back."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

from bench.core.atomic import TMP_PREFIX, write_text_atomic
from bench.core.log import get_logger
from bench.core.record import SCHEMA_VERSION, RecordError, RunRecord, parse_record
from bench.runner.voucher import read_manifest, unvouched_accepted, vouch, why_unvouched

RECORD_DIR = "records"
log = get_logger("records")


def record_path(out_dir, job_id: str) -> Path:
    return Path(out_dir) / RECORD_DIR / f"{job_id}.json"


def write_record(out_dir, record: dict) -> Path:
    """Temp file in the same directory + rename: a reader never sees half a record; then the
    driver vouches for it (bench/runner/voucher.py), so readers can tell it from a planted one."""
    path = record_path(out_dir, record["job_id"])
    record = {"schema_version": SCHEMA_VERSION, **record}
    text = json.dumps(record, indent=2, sort_keys=True, default=str) + "\n"
    write_text_atomic(path, text)
    vouch(path, text.encode("utf-8"))
    return path


def load_record(path, accept_unvouched: bool | None = None) -> tuple[RunRecord | None, str | None]:
    """(record, None), or (None, why it is unusable): unreadable, not UTF-8, not JSON (e.g.
    truncated), not a record (bench/core/record.py says why), or not vouched for by the driver
    (unknown, altered, forged: bench/runner/voucher.py) unless `accept_unvouched` (default: the
    UNLEARN_BENCH_UNVOUCHED environment, which `--unvouched accept` sets)."""
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        return None, "missing"
    except OSError as exc:
        return None, f"unreadable ({exc.strerror or exc})"
    unvouched = None
    if not (unvouched_accepted() if accept_unvouched is None else accept_unvouched):
        unvouched = why_unvouched(Path(path), raw, read_manifest(Path(path).parent))
    if unvouched and unvouched.startswith(("altered", "forged")):
        return None, unvouched  # what the driver wrote was changed: that, not how the result reads, is the cause
    try:
        parsed = parse_record(json.loads(raw.decode("utf-8")))
    except UnicodeDecodeError:
        return None, "not valid UTF-8"
    except json.JSONDecodeError as exc:
        return None, f"not valid JSON (truncated?): {exc.msg} at line {exc.lineno}"
    except RecordError as exc:
        return None, str(exc)
    return (None, unvouched) if unvouched else (parsed, None)


def warn_skipped(path, why: str) -> None:
    log.warning(f"unlearn-bench: warning: skipping record {path}: {why}")


def read_record(path, warn: bool = False) -> RunRecord | None:
    """The record at `path`, or None when there is none or it is unusable (so resume re-runs it)."""
    rec, why = load_record(path)
    if rec is None and warn and why != "missing":
        warn_skipped(path, why)
    return rec


def scan_records(out_dir) -> tuple[list[RunRecord], list[tuple[str, str]]]:
    """(every usable record under out_dir — records/ or any nested results tree — each job once,
    [(file, why) for every record file left out]); each left-out file is also warned about."""
    root = Path(out_dir)
    seen: dict[str, Path] = {}
    records, ignored = [], []
    for path in sorted(root.rglob("*.json"), key=lambda p: (len(p.parts), p)):  # the run's own records/ first
        if path.name.startswith(TMP_PREFIX) or path.parent.name != RECORD_DIR:
            continue
        rec, why = load_record(path)
        if rec is None:
            if why != "missing":  # deleted while we listed
                warn_skipped(path, why)
                ignored.append((str(path.relative_to(root)), why))
            continue
        if rec.job_id in seen:  # e.g. a results tree copied inside another: one job is one measurement
            why = f"a second record of job {rec.job_id} (counted once, from {seen[rec.job_id]})"
            warn_skipped(path, why)
            ignored.append((str(path.relative_to(root)), why))
            continue
        seen[rec.job_id] = path
        records.append(rec)
    return records, ignored


def iter_records(out_dir) -> Iterator[RunRecord]:
    """The usable records of `scan_records` (the others are warned about)."""
    yield from scan_records(out_dir)[0]


def finished_ok(out_dir, job_id: str) -> bool:
    """Resume: only a usable record with status 'ok' counts as done (others are warned about)."""
    rec = read_record(record_path(out_dir, job_id), warn=True)
    return bool(rec and rec.ok)
