import os

import pytest
import torch

from tests.helpers import FAST_DIGITS

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
if "UNLEARN_BENCH_STATE" not in os.environ:  # the record voucher's key: one per test session, never the user's
    import tempfile

    os.environ["UNLEARN_BENCH_STATE"] = tempfile.mkdtemp(prefix="unlearn-bench-test-state-")
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture
def fast_digits_options():
    return dict(FAST_DIGITS)


@pytest.fixture
def results_dir(tmp_path):
    d = tmp_path / "results"
    d.mkdir()
    return d



@pytest.fixture(autouse=True, scope="session")
def _runner_lines_on_stderr():
    """The runner logs its progress lines; the command shows them on stderr. So do the tests, in
    whatever order they run (capsys sees them, as a user would)."""
    from bench.core.log import show_on_stderr

    show_on_stderr()
