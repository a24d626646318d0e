"""Plain helpers shared by test files (fixtures live in conftest.py, which tests never import).

Import as `from tests.helpers import …` (pyproject's pytest `pythonpath` puts the repository root
on sys.path, so this works under `pytest` as under `python -m pytest`).
"""
from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"
HOSTILE_DIR = Path(__file__).parent / "hostile"  # plug-ins that misbehave (tests/test_method_process.py)

# small evaluation so end-to-end jobs take seconds on a CI core
FAST_DIGITS = {"forget_samples": 10, "remain_samples_per_class": 4, "sample_steps": 4}


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


def fixture_records() -> list[dict]:
    """The checked-in records behind the golden leaderboard (tests/fixtures/records)."""
    return [json.loads(p.read_text()) for p in sorted((FIXTURES / "records").glob("*.json"))]


# -- an outsider's method file (`unlearn-bench submit`) ---------------------------------------------
HEADER = """
from dataclasses import dataclass
import torch
from bench import Method, simple_loss


@dataclass
class HP:
    steps: int = 5
"""

GOOD_BODY = """
    def unlearn(self, model, forget, remain, budget, ctx):
        opt = torch.optim.SGD(model.denoiser.parameters(), lr=1e-4)
        batches = remain.batches(8, ctx.generator)
        for _ in range(budget.steps(self.hparams.steps)):
            b = next(batches)
            loss = simple_loss(model, b.x, model.condition(b.keys), ctx.generator)
            opt.zero_grad(); loss.backward(); opt.step(); ctx.step(loss)
"""


def method_file(tmp_path: Path, body: str = GOOD_BODY, name: str = "outsider", header: str = HEADER, cls: str = "Outsider", filename: str = "m.py") -> Path:
    path = tmp_path / filename
    path.write_text(header + f"\n\nclass {cls}(Method):\n    name = {name!r}\n    HParams = HP\n" + body)
    return path


# the smallest settings that still run each text-task method's own code path (task smoke tests)
SMALL_TEXT_HPARAMS = {"ca": {"anchor_images": 2, "anchor_sample_steps": 2}, "esd-u": {"ddim_steps": 4}, "esd-x": {"ddim_steps": 4}}


def run_hostile(name: str, private=(), timeout_s: float = 90):
    """The method stage of the plug-in tests/hostile/<name>.py on a smoke-sized mini-digits job, in a method
    process as every job runs it (bench/runner/method_process.py); its answer (`Unlearned`, with the
    statistics the plug-in returned and what confined it). `private`: paths it may not read besides the harness's."""
    import os
    import shutil

    from bench.runner.method_process import method_runner
    from bench.runner.plan import JobSpec
    from bench.runner.plugins import read_method_source
    from bench.runner.unlearn_stage import UnlearnRequest

    ref = str(HOSTILE_DIR / f"{name}.py")
    spec = JobSpec("t", "mini-digits-class", {"forget_samples": 4, "remain_samples_per_class": 2, "sample_steps": 2}, "0",
                   ref, f"hostile-{name.replace('_', '-')}", {}, 0, {"max_steps": 2}, timeout_s)
    got = method_runner().unlearn(UnlearnRequest(spec, {ref: read_method_source(ref)}, "cpu", 1), timeout_s, private)
    shutil.rmtree(os.path.dirname(got.weights), ignore_errors=True)
    return got


def method_stage_in_process(monkeypatch) -> None:
    """Run jobs' method stage in this process instead of a child (bench/runner/method_process.py).

    Only for tests whose fixtures patch a library in this process, which a child cannot see (the fake
    CIFAR-10 files' checksums patched into torchvision); the child path itself is tested in
    tests/test_method_process.py and by every other job-running test."""
    import os
    import tempfile

    import torch

    import bench.runner.job as job
    from bench.runner.unlearn_stage import WEIGHTS_FILE, UnlearnRequest, unlearn_stage

    def here(spec, device, fast_paths, sources, timeout_s, start=None, private=()):
        workdir = tempfile.mkdtemp(prefix="unlearn-bench-method-")
        request = UnlearnRequest(spec, dict(sources or {}), str(device), torch.get_num_threads(), fast_paths, start, workdir=workdir)
        result = unlearn_stage(request)
        result.weights = os.path.join(workdir, WEIGHTS_FILE)
        return result

    monkeypatch.setattr(job, "unlearn_in_child", here)
