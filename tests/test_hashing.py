"""bench/core/hashing.py against the formulas it replaced, written out here by hand.

These digests key caches, job ids and provenance, so they must stay byte-identical to what the
code computed before it moved into one module: each test hashes random files/objects both ways.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
from pathlib import Path

import pytest
import torch

from bench.core.hashing import (
    checkpoint_digest,
    file_digest,
    files_digest,
    json_digest,
    state_dict_digest,
    tree_fingerprint,
)

CASES = range(6)


def _bytes(rng: random.Random, n: int | None = None) -> bytes:
    return rng.randbytes(rng.choice([0, 1, 7, 4096, 70_000]) if n is None else n)


def _tree(root: Path, rng: random.Random) -> Path:
    """Nested files whose string order and path order differ ("a-b/…" vs "a/…"), other extensions too."""
    root.mkdir(parents=True, exist_ok=True)
    names = ["model.safetensors", "a/x.safetensors", "a-b/x.safetensors", "a/b/c.safetensors", "ünï/w.safetensors",
             "config.json", "a/notes.txt", "z.safetensors.bak"]
    for name in rng.sample(names, rng.randint(1, len(names))):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(_bytes(rng))
    return root


# -- the old formulas, verbatim ---------------------------------------------------------------------
def old_checkpoint_hash(directory) -> str:  # tasks/mini/recipes.py
    h = hashlib.sha256()
    files = sorted(Path(directory).rglob("*.safetensors"))
    if not files:
        return "missing"
    for f in files:
        h.update(f.relative_to(directory).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def old_sd_file_hash(files: tuple) -> str:  # tasks/stable_diffusion.py _file_hash
    h = hashlib.sha256()
    for name, _, _ in files:
        with open(name, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 24), b""):
                h.update(block)
    return h.hexdigest()[:16]


def old_file_digest(path) -> str:  # metrics/inception_fid.py
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()[:16]


def old_fingerprint(directory) -> str:  # bench/core/adapters/model_cache.py
    root = Path(directory)
    h = hashlib.sha256()
    for f in sorted(root.rglob("*")):
        if f.is_file():
            st = f.stat()
            h.update(f"{f.relative_to(root).as_posix()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def old_weights_hash(state_dict) -> str:  # DiffusionModel.weights_hash
    h = hashlib.sha256()
    for name, tensor in sorted(state_dict.items()):
        h.update(name.encode())
        t = tensor.detach().cpu().contiguous()
        h.update((t.view(torch.int16) if t.dtype == torch.bfloat16 else t).numpy().tobytes())
    return h.hexdigest()[:16]


def old_spec_key(spec) -> str:  # tasks/mini_shapes.py, tasks/stable_diffusion.py cache keys
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:20]


def old_stable_hash(obj) -> str:  # bench/runner/plan.py setting hash
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


# -- the comparisons --------------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_checkpoint_digest_is_the_old_checkpoint_hash(tmp_path, case):
    rng = random.Random(case)
    root = _tree(tmp_path / "ckpt", rng)
    assert checkpoint_digest(root) == old_checkpoint_hash(root)
    assert checkpoint_digest(str(root)) == old_checkpoint_hash(str(root))
    (tmp_path / "empty").mkdir()
    assert checkpoint_digest(tmp_path / "empty") == old_checkpoint_hash(tmp_path / "empty") == "missing"
    assert checkpoint_digest(tmp_path / "absent") == old_checkpoint_hash(tmp_path / "absent") == "missing"


def test_committed_checkpoints_keep_their_recorded_sha256():
    dirs = [p.parent for p in (Path(__file__).resolve().parents[1] / "tasks" / "mini" / "checkpoints").glob("*/recipe.json")]
    dirs = [d for d in dirs if any(d.rglob("*.safetensors"))]
    if not dirs:
        pytest.skip("no committed checkpoints")
    for d in dirs:
        assert checkpoint_digest(d) == old_checkpoint_hash(d) == json.loads((d / "recipe.json").read_text())["sha256"], d


@pytest.mark.parametrize("case", CASES)
def test_file_digests_are_the_old_ones(tmp_path, case):
    rng = random.Random(100 + case)
    files = []
    for i in range(rng.randint(1, 4)):
        f = tmp_path / f"f{i}.bin"
        f.write_bytes(_bytes(rng, rng.choice([0, 5, 1 << 16, (1 << 22) + 3])))  # below and across the 4 MiB block
        files.append(f)
    for f in files:
        assert file_digest(f) == file_digest(str(f)) == old_file_digest(f)
    stat_key = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    assert files_digest([name for name, _, _ in stat_key]) == files_digest(files) == old_sd_file_hash(stat_key)


def test_sd_checkpoint_id_of_a_local_unet_is_unchanged(tmp_path):
    from tasks.stable_diffusion import sd_checkpoint_id

    rng = random.Random(7)
    unet = tmp_path / "sd" / "unet"
    unet.mkdir(parents=True)
    for name in ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.fp16.safetensors", "config.json"):
        (unet / name).write_bytes(_bytes(rng, 10_000))
    files = sorted(unet.glob("diffusion_pytorch_model*.*"))
    expected = "sha256:" + old_sd_file_hash(tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files))
    assert sd_checkpoint_id(str(tmp_path / "sd")) == expected


@pytest.mark.parametrize("case", CASES)
def test_tree_fingerprint_is_the_old_fingerprint(tmp_path, case):
    rng = random.Random(200 + case)
    root = _tree(tmp_path / "tree", rng)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(_bytes(rng, 33))
    os.symlink(outside, root / "linked.bin")  # followed, as in the HF cache's snapshot links
    (root / "empty-dir").mkdir()
    assert tree_fingerprint(root) == tree_fingerprint(str(root)) == old_fingerprint(root)
    before = tree_fingerprint(root)
    os.utime(outside, ns=(1, 1))
    assert tree_fingerprint(root) == old_fingerprint(root) != before


@pytest.mark.parametrize("case", CASES)
def test_state_dict_digest_is_the_old_weights_hash(case):
    g = torch.Generator().manual_seed(case)
    sd = {
        "b.weight": torch.randn(4, 3, generator=g),
        "a.bias": torch.randn(5, generator=g).half(),
        "c.bf16": torch.randn(2, 6, generator=g).to(torch.bfloat16),
        "d.transposed": torch.randn(3, 4, generator=g).t(),  # not contiguous
        "e.steps": torch.arange(case + 1),
        "f.param": torch.nn.Parameter(torch.randn(3, generator=g)),
    }
    sd = dict(random.Random(case).sample(sorted(sd.items()), len(sd)))  # insertion order must not matter
    assert state_dict_digest(sd) == old_weights_hash(sd)


def test_weights_hash_of_a_model_is_the_old_formula():
    from tests.tiny_models import tiny_class_model

    model = tiny_class_model(seed=3)
    assert model.weights_hash() == old_weights_hash(model.denoiser.state_dict())


@pytest.mark.parametrize("case", CASES)
def test_json_digest_is_the_old_spec_key_and_setting_hash(case):
    rng = random.Random(300 + case)
    spec = {
        "weights": rng.randbytes(8).hex(),
        "prompts": [f"a {rng.choice(['red', 'blue', 'grün'])} cross {i}" for i in range(rng.randint(0, 5))],
        "seeds": [rng.randint(0, 10**7) for _ in range(rng.randint(0, 5))],
        "sampler": {"steps": rng.randint(1, 50), "guidance": rng.random() * 10, "batch_size": 4},
        "shape": [4, 64, 64], "dtype": None, "flag": rng.random() < 0.5,
    }
    assert json_digest(spec, 20) == old_spec_key(spec)
    assert json_digest(spec, 16, default=str) == old_stable_hash(spec)
    odd = {**spec, "path": Path("/x") / str(case), "budget": {"max_steps": case}}  # not JSON: written as str
    assert json_digest(odd, 16, default=str) == old_stable_hash(odd)
    with pytest.raises(TypeError):
        json_digest(odd, 20)  # like the old spec keys: no silent str()


def test_job_setting_hash_and_id_are_unchanged():
    from bench.runner.plan import JobSpec

    job = JobSpec(suite="s", task="mini-digits-class", task_options={"sample_steps": 4, "root": Path("/d")}, target="0",
                  method="graddiff", label="GradDiff", hparams={"lr": 1e-3}, seed=1, budget={"max_steps": 2})
    assert job.setting_hash == old_stable_hash(job.setting())
    assert job.job_id == f"mini-digits-class__GradDiff__t0__s1__{old_stable_hash(job.setting())[:10]}"


def test_a_checkpoint_is_checked_against_its_recipe_once_per_file_state(tmp_path, monkeypatch):
    """4 KB of flipped bytes in the shipped digits UNet: refused by name with both digests, not scored."""
    import shutil

    import pytest

    import bench.core.hashing as hashing
    from bench.core.errors import CheckpointMismatchError
    from tasks.mini import CHECKPOINT_DIR
    from tasks.mini_digits import MiniDigitsClass

    ckpt = tmp_path / "mini-digits"
    shutil.copytree(CHECKPOINT_DIR / "mini-digits", ckpt)
    calls = []
    real = hashing.checkpoint_digest
    monkeypatch.setattr(hashing, "checkpoint_digest", lambda *a, **k: calls.append(a) or real(*a, **k))
    good = hashing.verified_checkpoint(ckpt)
    assert hashing.verified_checkpoint(ckpt) == good and len(calls) == 1  # cached by size and mtime
    weights = next(ckpt.rglob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-8192:-4096] = bytes(b ^ 0xFF for b in data[-8192:-4096])
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointMismatchError, match=rf"checkpoint {ckpt} does not match its recipe.json: sha256 {good} recorded, [0-9a-f]{{16}} found"):
        hashing.verified_checkpoint(ckpt)
    task = MiniDigitsClass.make({"checkpoint": str(ckpt)})
    with pytest.raises(CheckpointMismatchError):
        task.load_base_model()


def test_a_user_given_checkpoint_enters_the_setting_hash(tmp_path):
    """Another file under the same path is another row; a shipped default leaves the hash as it was."""
    import shutil

    from safetensors.torch import load_file, save_file

    from bench.core.errors import CheckpointMismatchError
    from bench.runner.plan import MethodEntry, Suite, TaskEntry, plan_jobs
    from tasks.mini_digits import MODEL_DIR

    def job(options):
        suite = Suite("s", [TaskEntry("mini-digits-class", options=options, targets=["0"])], [MethodEntry("finetune", "finetune")], [0], {"max_steps": 2})
        return plan_jobs(suite)[0]

    default = job({})
    assert default.given_checkpoints == {} and "checkpoints" not in default.setting()
    mine = tmp_path / "mine"
    shutil.copytree(MODEL_DIR, mine)
    a = job({"checkpoint": str(mine)})
    assert set(a.given_checkpoints) == {"checkpoint"} and a.setting()["checkpoints"] == a.given_checkpoints
    weights = next(mine.rglob("*.safetensors"))
    state = load_file(weights)
    name = next(iter(state))
    state[name] = state[name] + 1e-3
    save_file(state, weights)
    with pytest.raises(CheckpointMismatchError, match=str(mine)):  # it has a recipe.json: refused by name
        job({"checkpoint": str(mine)})
    (mine / "recipe.json").unlink()  # a user's own checkpoint, no recipe to check against
    b = job({"checkpoint": str(mine)})
    assert b.task_options == a.task_options and b.setting_hash != a.setting_hash and b.job_id != a.job_id
