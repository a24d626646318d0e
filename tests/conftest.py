import os

import pytest
import torch

os.environ.setdefault("RAY_DEDUP_LOGS", "0")
torch.set_num_threads(min(2, os.cpu_count() or 1))

# small evaluation so end-to-end jobs take seconds on a CI core
FAST_DIGITS = {"forget_samples": 10, "remain_samples_per_class": 4, "sample_steps": 4}


@pytest.fixture
def fast_digits_options():
    return dict(FAST_DIGITS)


@pytest.fixture
def results_dir(tmp_path):
    d = tmp_path / "results"
    d.mkdir()
    return d


def write_suite(path, methods, targets=("0",), options=None, budget=2, seeds=(0,)):
    import yaml

    path.write_text(
        yaml.safe_dump(
            {
                "name": "test",
                "seeds": list(seeds),
                "tasks": {"mini-digits-class": {"targets": list(targets), "options": options or FAST_DIGITS}},
                "methods": methods,
                "budget": {"max_steps": budget},
            }
        )
    )
    return path
