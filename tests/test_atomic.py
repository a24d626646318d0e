"""Files written in place (records, leaderboard, cache entries, FID statistics, training state) go
through one mechanism: unique temp file, fsync, rename, the permissions a plain open() gives."""
import os
import stat

import pytest
import torch

from bench.core.atomic import TMP_PREFIX, write_atomic
from bench.core.cache import cached


def test_a_cache_entry_is_written_once_with_plain_open_permissions(tmp_path):
    path = tmp_path / "c" / "entry.pt"
    calls = []
    first = cached(path, lambda: calls.append(1) or torch.arange(3))
    again = cached(path, lambda: calls.append(1) or torch.zeros(3))
    assert calls == [1] and torch.equal(first, again)
    umask = os.umask(0o022)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # not mkstemp's 0600: a shared cache stays shared
    assert [p.name for p in path.parent.iterdir()] == ["entry.pt"]


def test_a_failed_write_leaves_neither_target_nor_temp_file(tmp_path):
    def boom(f):
        f.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(tmp_path / "x.npz", boom)
    assert list(tmp_path.iterdir()) == []


def test_replacing_keeps_the_old_file_until_the_new_one_is_complete(tmp_path):
    path = write_atomic(tmp_path / "r.json", lambda f: f.write(b"old"))
    with pytest.raises(ValueError):
        write_atomic(path, lambda f: f.write(b"new") and (_ for _ in ()).throw(ValueError()))
    assert path.read_bytes() == b"old" and not [p for p in tmp_path.iterdir() if p.name.startswith(TMP_PREFIX)]
