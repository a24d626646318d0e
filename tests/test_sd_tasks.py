"""sd-nudity / sd-vangogh on a tiny SD-shaped pipeline: generate -> unlearn (every method) -> metrics."""
import json
import os
from pathlib import Path

import pytest

from bench.core.context import RunContext
from bench.core.errors import ConfigError, MissingWeightsError
from bench.runner.job import execute
from bench.runner.plan import JobSpec
from methods.base import METHODS
from tasks.base import TASKS
from tasks.stable_diffusion import nudity_pairs, read_i2p, scene_prompts, style_pairs, vocabulary
from tests.helpers import SMALL_TEXT_HPARAMS
from tests.t2i_fixtures import TINY_JUDGE, build_tiny_openclip, build_tiny_sd


@pytest.fixture(scope="session")
def sd_options(tmp_path_factory):
    root = tmp_path_factory.mktemp("sd-task")
    previous = os.environ.get("UNLEARN_BENCH_CACHE")
    os.environ["UNLEARN_BENCH_CACHE"] = str(root / "cache")
    yield {
        "model": str(build_tiny_sd(root / "tiny-sd")),
        "forget_pairs": 2,
        "eval_prompts": 2,
        "sample_steps": 2,
        "clip_model": TINY_JUDGE,
        "clip_pretrained": "random-test",
        "clip_weights": str(build_tiny_openclip(root / "judge")),
    }
    if previous is None:
        os.environ.pop("UNLEARN_BENCH_CACHE", None)
    else:
        os.environ["UNLEARN_BENCH_CACHE"] = previous


def methods_for(kind):
    return [m for m in METHODS.names() if kind in METHODS.get(m).task_kinds]


def test_prompt_sets_follow_protocol():
    v = vocabulary()
    for attr in ("subject", "mood", "activity", "place", "time", "scene"):
        assert not set(v["train"][attr]) & set(v["test"][attr]), attr
    forget, safe = nudity_pairs("train", 20)
    assert len(set(safe)) == 20 and all(w not in s.split(",")[0] for s in safe for w in v["nudity_words"])
    assert all(any(w in f for w in v["nudity_words"]) for f in forget)
    assert all(f.split(", ", 1)[1] == s.split(", ", 1)[1] for f, s in zip(forget, safe))
    assert not set(scene_prompts("train", 50, 0)) & set(scene_prompts("test", 50, 0))
    sf, ss, sr = style_pairs("train", 10, "Vincent van Gogh")
    assert all(f == f"{s}, in the style of Vincent van Gogh" for f, s in zip(sf, ss))
    assert not any("Van Gogh" in r for r in sr)
    with pytest.raises(ConfigError):
        scene_prompts("train", 10**6, 0)


def test_i2p_csv(tmp_path):
    good = tmp_path / "i2p.csv"
    good.write_text('prompt,sd_seed,sd_guidance_scale,categories\n"a, b",3,7.0,sexual\nc,4,9.5,sexual\n')
    assert read_i2p(str(good)) == (["a, b", "c"], [3, 4], [7.0, 9.5])
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,seed\nx,1\n")
    with pytest.raises(ConfigError, match="sd_guidance_scale"):
        read_i2p(str(bad))


def test_missing_sd_weights_is_clear(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    task = TASKS.get("sd-nudity").make({})
    with pytest.raises(MissingWeightsError, match=r"CompVis/stable-diffusion-v1-4 is not in the Hugging Face cache .*`unlearn-bench fetch --suite paper`"):
        task.build("nudity", RunContext(device="cpu", seed=0, task_kind="concept"))


def test_build_caches_original_images(sd_options):
    task = TASKS.get("sd-nudity").make(sd_options)
    assert task.checkpoints()["stable-diffusion"].startswith("sha256:")
    inst = task.build("nudity", RunContext(device="cpu", seed=0, task_kind="concept"))
    assert inst.forget.paired_keys == inst.remain.keys
    assert inst.forget.x.shape == (2, 4, 8, 8)
    files = sorted(Path(os.environ["UNLEARN_BENCH_CACHE"]).rglob("*.pt"))
    assert len(files) == 5  # forget, remain, remain_test, retention_floor (remain_test's prompts, other seeds), eval forget (AS-safe's floor)
    stamps = [f.stat().st_mtime_ns for f in files]
    inst2 = task.build("nudity", RunContext(device="cpu", seed=1, task_kind="concept"))
    assert [f.stat().st_mtime_ns for f in files] == stamps  # served from the cache
    assert (inst2.forget.x == inst.forget.x).all()


@pytest.mark.parametrize("task_name", ["sd-nudity", "sd-vangogh"])
def test_every_method_runs_end_to_end(sd_options, task_name, tmp_path):
    task_cls = TASKS.get(task_name)
    target = task_cls.make(sd_options).targets()[0]
    for method in methods_for(task_cls.kind):
        spec = JobSpec("t", task_name, sd_options, target, method, method, SMALL_TEXT_HPARAMS.get(method, {}), 0, {"max_steps": 1})
        rec = execute(spec, device="cpu")
        assert rec["status"] == "ok", (method, rec)
        cols = rec["metrics"]
        assert any(c.startswith("AS-train (tiny-test-clip random-test, raw cosine") for c in cols)
        assert any(c.startswith("AS-test") for c in cols) and any(c.startswith("Retention dist.") for c in cols)
        if task_name == "sd-nudity":
            assert any(c.startswith("nudity images (NudeNet 3, thr=0.6, n=2)") for c in cols)
        else:
            assert any(c.startswith("UA (tiny-test-clip random-test zero-shot, 12 artists") for c in cols)
        assert all(v == v for v in cols.values()), cols  # no NaN
        if method == "original":
            assert cols[next(c for c in cols if c.startswith("Retention"))] == pytest.approx(0, abs=1e-4)
        json.dumps(rec, default=str)


def test_nudity_with_i2p_csv_uses_its_seeds_and_guidance(sd_options, tmp_path):
    csv = tmp_path / "i2p.csv"
    csv.write_text("prompt,sd_seed,sd_guidance_scale\na nude statue,5,7.0\na bath scene,6,3.0\na beach,7,7.0\n")
    options = {**sd_options, "i2p_csv": str(csv)}
    rec = execute(JobSpec("t", "sd-nudity", options, "nudity", "original", "original", {}, 0, {"max_steps": 1}), device="cpu")
    assert rec["status"] == "ok"
    assert "nudity images (NudeNet 3, thr=0.6, n=3)" in rec["metrics"]


def test_asking_for_lpips_without_it_fails_before_anything_loads(sd_options, monkeypatch):
    from metrics import retention

    monkeypatch.setattr(retention, "lpips_problem", lambda: "torchvision's AlexNet weights are not in /nowhere")
    monkeypatch.setattr(retention, "local_lpips", lambda: None)
    task = TASKS.get("sd-vangogh").make({**sd_options, "retention_space": "lpips"})
    with pytest.raises(MissingWeightsError, match="retention_space: lpips, but torchvision's AlexNet weights are not in /nowhere"):
        task.build("vangogh", RunContext(device="cpu", seed=0, task_kind="style"))


def test_sd_vangogh_neighbours_are_other_artists_on_held_out_scenes(sd_options):
    from metrics.neighbours import NeighbourAccuracy
    from tasks.stable_diffusion import artists

    task = TASKS.get("sd-vangogh").make({**sd_options, "neighbours": True})
    assert "neighbour-accuracy" in task.metrics
    inst = task.build("vangogh", RunContext(device="cpu", seed=0, task_kind="style"))
    prompts, seeds = inst.evaluation.eval_sets["neighbours"]
    ns = inst.evaluation.neighbours
    names = artists()["neighbours"]
    assert ns.names == tuple(names) and len(prompts) == len(ns.truth) == len(seeds) == sd_options["eval_prompts"]
    for p, i in zip(prompts, ns.truth):
        assert p.endswith(f"in the style of {artists()['zero_shot'][i]}") and artists()["zero_shot"][i] in names
        assert "van Gogh" not in p
    out = NeighbourAccuracy().compute(inst, inst.model, inst.model, None)
    (col,) = out
    assert col.startswith("NA (") and "neighbours Paul Cezanne + Claude Monet" in col and 0 <= out[col].value <= 1


def test_prompt_files_reach_the_evaluation_with_their_seeds_and_guidance(sd_options, monkeypatch):
    """A task built with registry sets (tests/prompt_fixtures.py) judges their prompts, at the file's seeds and at each
    prompt's own guidance; the metrics' columns count the files' sizes."""
    from metrics.alignment import Alignment
    from metrics.attack import AttackSuccess
    from metrics.base import generated
    from metrics.nudity import Nudity
    from tests import prompt_fixtures as pf

    pf.install(monkeypatch)
    options = {**sd_options, "forget_set": "t-forget", "remain_set": "t-remain", "remain_test_set": "t-test",
               "nudity_eval_set": "t-nudity", "attack": True, "attack_set": "t-attack", "as_train_set": "training"}
    task = TASKS.get("sd-nudity").make(options)
    inst = task.build("nudity", RunContext(device="cpu", seed=0, task_kind="concept"))
    assert inst.forget.keys == ["a nude dancer number 0", "a nude dancer number 1"] and inst.remain.keys == inst.forget.paired_keys
    calls = []
    sample = inst.model.sample

    def spy(keys, seeds, **kw):
        calls.append((list(keys), list(seeds), kw["guidance"]))
        return sample(keys, seeds, **kw)

    monkeypatch.setattr(inst.model, "sample", spy)
    images = generated(inst, inst.model, "attack")
    assert len(images) == 3
    assert sorted(calls, key=lambda c: c[2]) == [(["attack prompt one", "attack three"], [111, 333], 7.0), (["attack prompt, two"], [222], 13.0)]
    calls.clear()
    generated(inst, inst.model, "nudity")
    assert calls == [(["nudity check one", "nudity check two", "nudity check three", "nudity check four"],
                      [60_000, 60_001, 60_002, 60_003], 7.5)]  # no guidance in the file: the task's; no seeds: the role's
    assert any("n=4" in c for c in Nudity().columns(inst)) and any("n=3" in c for c in AttackSuccess().columns(inst))
    assert next(iter(Alignment().columns(inst))).endswith("n=2)")  # AS-train on the 2 training prompts themselves
    out = Nudity().compute(inst, inst.model, inst.model, RunContext(device="cpu", seed=0, task_kind="concept"))
    assert all(v.ids == ("0@60000", "1@60001", "2@60002", "3@60003") for v in out.values())
