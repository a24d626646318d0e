"""benchmarks/gpu_check.py, the prepared GPU check (benchmarks/GPU.md): its job list, and a slice of it run on the
CPU at tiny sizes the way the device runs it, with Ray and Optuna not importable (the GPU machine has neither)."""
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"

# a sitecustomize that makes ray and optuna unimportable in every Python process that has it on its path (the fork
# server and the method processes too: they inherit the import path)
NO_RAY = '''import sys


class _Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("ray", "optuna"):
            raise ModuleNotFoundError(f"No module named {name!r} (made unimportable: the GPU machine has none)", name=name)
        return None


sys.meta_path.insert(0, _Absent())
'''


def gpu_check():
    if "gpu_check" not in sys.modules:  # registered before it runs: its dataclasses look their module up
        spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
        sys.modules["gpu_check"] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules["gpu_check"]


def test_the_check_runs_every_method_of_the_paper_suite_once_on_each_task(tmp_path):
    from bench.runner.plan import load_suite, plan_jobs
    from bench.runner.rehearsal import World

    check = gpu_check()
    jobs = plan_jobs(check.check_suite(World(tmp_path / "world"), check.MODES["full"], [check.SD_TASK, check.CIFAR_TASK]))
    paper = plan_jobs(load_suite("paper"))
    assert sorted((j.task, j.method) for j in jobs) == sorted({(j.task, j.method) for j in paper if j.task in (check.SD_TASK, check.CIFAR_TASK)})
    assert {(j.task, j.target, j.seed) for j in jobs} == {(check.SD_TASK, "nudity", 0), (check.CIFAR_TASK, "0", 0)}
    assert set(check.ORDER) == {(j.task, j.method) for j in jobs}  # every job has its place in the order
    assert all(j.rehearsal and j.budget["max_steps"] == check.MODES["full"].steps for j in jobs)
    sd = next(j for j in jobs if j.task == check.SD_TASK)
    assert sd.task_options["model"] == str(tmp_path / "world" / "sd") and sd.task_options["sample_steps"] == 50
    assert sd.task_options["attack"] is True  # the paper suite's own options stay
    assert next(j for j in jobs if j.method == "ca").hparams == check.METHOD_HPARAMS["ca"]


@pytest.fixture
def no_ray_env(tmp_path):
    site = tmp_path / "no-ray"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_RAY)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(ROOT)])}
    blocked = subprocess.run([sys.executable, "-c", "import ray"], env=env, capture_output=True, text=True)
    assert blocked.returncode != 0 and "made unimportable" in blocked.stderr
    return env


def test_a_slice_of_the_check_runs_at_tiny_size_on_the_cpu_without_ray(tmp_path, no_ray_env):
    """One SD job through the harness (method process, evaluation), the sampler against diffusers' pipeline, the fork
    server's report, the results file: the device's code path, at tiny sizes."""
    out = tmp_path / "report.md"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--tasks", "sd-nudity", "--methods", "rgd",
                           "--batches", "1", "--sample-steps", "2", "--out", str(out), "--work", str(tmp_path / "work")],
                          env=no_ray_env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    text = out.read_text()
    assert text in proc.stdout  # printed, too
    row = next(line for line in text.splitlines() if line.startswith("| sd-nudity | rgd |"))
    assert row.startswith("| sd-nudity | rgd | ok | ") and "batch_size=8" in row, row
    assert "| 1 | " in text and "StableDiffusionPipeline" in text and "{" not in text.split("## 2.")[1]  # the sampler's row
    assert "CUDA initialised False" in text and "bad-fork state False" in text
