"""mini-shapes-concept / mini-shapes-style: prompt splits, committed checkpoints, every method end to end."""
import json
import os

import pytest
import torch

from bench.core.adapters.text_encoders import TextEncoder
from bench.core.adapters.text_to_image import TextToImageModel
from bench.core.context import RunContext
from bench.core.record import parse_record
from bench.runner.job import execute
from bench.runner.plan import JobSpec
from methods.base import METHODS
from metrics.clip_judge import ClipJudge
from tasks.base import TASKS
from tasks.mini import shapes
from tasks.mini.shapes_clip import CompactTokenizer, multi_positive_loss, world_token_ids
from tasks.mini.shapes_recipes import ENCODER_DIR, JUDGE_DIR, MODEL_DIR, load_shapes_encoder, load_shapes_judge
from tasks.mini_shapes import CONCEPT_TARGETS, STYLE_TARGETS, VOCAB, concept_sets, style_sets
from tests.helpers import SMALL_TEXT_HPARAMS

FAST = {"forget_pairs": 2, "eval_prompts": 2, "sample_steps": 2, "batch_size": 8}


@pytest.fixture(scope="module", autouse=True)
def private_cache(tmp_path_factory):
    previous = os.environ.get("UNLEARN_BENCH_CACHE")
    os.environ["UNLEARN_BENCH_CACHE"] = str(tmp_path_factory.mktemp("mini-shapes-cache"))
    yield
    if previous is None:
        os.environ.pop("UNLEARN_BENCH_CACHE", None)
    else:
        os.environ["UNLEARN_BENCH_CACHE"] = previous


def _words(prompts):
    return {w for p in prompts for w in p.split()}


ALL_TARGETS = [(concept_sets, t) for t in CONCEPT_TARGETS] + [(style_sets, t) for t in STYLE_TARGETS]


@pytest.mark.parametrize("make,target", ALL_TARGETS)
def test_a_smaller_evaluation_is_the_first_prompts_of_a_larger_one(make, target):
    """What benchmarks/eval_size.py relies on to study fewer prompts without new images."""
    small, large = make(target, 8, 8), make(target, 8, 32)
    for key in ("eval_forget", "eval_remain_train", "eval_remain_test"):
        assert small[key] == large[key][:8], key


def test_eval_sample_steps_set_the_evaluation_images_only():
    """The training pairs keep `sample_steps`; every evaluation image (and Original's retention images) uses the other."""
    task = TASKS.get("mini-shapes-concept").make({**FAST, "sample_steps": 3, "eval_sample_steps": 2})
    assert task.sampler()["steps"] == 2 and task.sampler(evaluation=False)["steps"] == 3
    assert TASKS.get("mini-shapes-concept").make(FAST).sampler()["steps"] == 2  # None: the one setting
    calls = []

    class Model:
        def sample(self, prompts, seeds, steps, **kw):
            calls.append(steps)
            return torch.zeros(len(prompts), 3, 4, 4)

    task.original_images(Model(), "w", ["a cross"], [0], evaluation=False)
    task.original_images(Model(), "w", ["a cross"], [0])
    assert calls == [3, 2]  # two cache entries: the sampler is part of the key
    inst = task.build("cross", RunContext(device=torch.device("cpu"), seed=0, task_kind="concept"))
    assert inst.evaluation.sampler["steps"] == 2


@pytest.mark.parametrize("make,target", ALL_TARGETS)
def test_prompt_splits_are_disjoint_and_paired(make, target):
    s = make(target, 20, 20)
    train_vocab = set(VOCAB["train"]["colours"]) | set(VOCAB["train"]["backgrounds"])
    test_vocab = set(VOCAB["test"]["colours"]) | set(VOCAB["test"]["backgrounds"])
    assert not train_vocab & test_vocab
    for key in ("forget", "safe", "remain", "eval_remain_train"):
        assert _words(s[key]) & train_vocab and not _words(s[key]) & test_vocab, key
    for key in ("eval_forget", "eval_remain_test"):
        assert _words(s[key]) & test_vocab and not _words(s[key]) & train_vocab, key
    assert not set(s["eval_remain_train"]) & set(s["eval_remain_test"])
    assert all(target in p.split() for p in s["forget"] + s["eval_forget"])
    for key in ("safe", "remain", "eval_remain_train", "eval_remain_test"):
        assert not any(target in p.split() for p in s[key]), key
    assert len(s["forget"]) == len(s["safe"]) == len(s["remain"]) == 20
    # the paired safe prompt is the forget prompt without the concept
    for f, p in zip(s["forget"], s["safe"]):
        assert set(f.split()) - set(p.split()) <= {target, "in", "style"}


def test_compact_tokenizer_keeps_argmax_pooling():
    ids = world_token_ids()
    tok = CompactTokenizer(ids)
    t = tok(["a red circle on a black background in swirl style", "an unknown zebra"])
    assert t.max() < len(ids) and (t[:, 0] == ids.index(49406)).all()
    assert t[0].argmax() == t[0].tolist().index(len(ids) - 1)  # end of text is the largest compact id
    assert CompactTokenizer.UNK in t[1].tolist()


def test_multi_positive_loss_prefers_consistent_pairs():
    img = torch.eye(3)
    good = multi_positive_loss(img, img, torch.eye(3, dtype=torch.bool), torch.tensor(10.0))
    bad = multi_positive_loss(img, img.flip(0), torch.eye(3, dtype=torch.bool), torch.tensor(10.0))
    assert good < bad


@pytest.mark.skipif(not (MODEL_DIR / "unlearn_bench.json").exists(), reason="committed mini-shapes checkpoint absent")
def test_committed_checkpoints_load_and_satisfy_protocols():
    for d in (MODEL_DIR, ENCODER_DIR, JUDGE_DIR):
        recipe = json.loads((d / "recipe.json").read_text())
        from bench.core.hashing import checkpoint_digest

        assert recipe["sha256"] == checkpoint_digest(d), d
    model = TextToImageModel.load(MODEL_DIR)
    assert isinstance(model.text_encoder, TextEncoder)
    assert model.sample_shape == (3, 16, 16)
    assert any("attn2" in n for n in model.parameter_groups()["cross_attention"])
    enc = load_shapes_encoder()
    h = enc.encode(["a red circle on a black background", ""])
    assert h.shape == (2, 16, 64)
    judge = load_shapes_judge()
    assert isinstance(judge, ClipJudge)
    img = torch.from_numpy(shapes.draw_batch([shapes.ShapeSpec("circle", "red", "black")], [0]))
    ie, te = judge.encode_images(img), judge.encode_texts(["a red circle on a black background", "a blue cross"])
    assert torch.allclose(ie.norm(dim=-1), torch.ones(1)) and torch.allclose(te.norm(dim=-1), torch.ones(2))
    assert (ie @ te.T)[0, 0] > (ie @ te.T)[0, 1]


@pytest.mark.skipif(not (MODEL_DIR / "unlearn_bench.json").exists(), reason="committed mini-shapes checkpoint absent")
@pytest.mark.parametrize("task_name", ["mini-shapes-concept", "mini-shapes-style"])
def test_every_method_runs_end_to_end(task_name):
    task_cls = TASKS.get(task_name)
    task = task_cls.make(FAST)
    inst = task.build(task.targets()[0], RunContext(device="cpu", seed=0, task_kind=task_cls.kind))
    assert inst.forget.paired_keys is not None and inst.forget.x.shape == (2, 3, 16, 16)
    assert -1 <= float(inst.forget.x.min()) and float(inst.forget.x.max()) <= 1
    concept = inst.forget.meta["concept_prompt"]  # what ESD erases: the concept phrase, not whole prompts
    assert concept == {"mini-shapes-concept": "a cross", "mini-shapes-style": "swirl style"}[task_name]
    assert all(concept.removeprefix("a ") in p for p in inst.forget.keys)
    assert not any(concept.removeprefix("a ") in p for p in inst.forget.paired_keys)
    methods = [m for m in METHODS.names() if task_cls.kind in METHODS.get(m).task_kinds]
    assert {"original", "finetune", "graddiff"} <= set(methods)
    floors = set()
    for method in methods:
        spec = JobSpec("t", task_name, FAST, task.targets()[0], method, method, SMALL_TEXT_HPARAMS.get(method, {}), 0, {"max_steps": 2})
        rec = execute(spec, device="cpu")
        assert rec["status"] == "ok", (method, rec.get("error"))
        cost = rec["cost"]  # image generation is timed apart from judging, and is part of the evaluation
        assert 0 < cost["eval_sample_seconds"] <= cost["eval_seconds"], cost
        cols = rec["metrics"]
        assert any(c.startswith("AS-train (mini-shapes-clip-judge, raw cosine, n=2)") for c in cols), cols
        assert any(c.startswith("UA (mini-shapes-clip-judge zero-shot") for c in cols), cols
        ret = next(c for c in cols if c.startswith("Retention dist. (1−cos mini-shapes-clip-judge image emb."))
        assert all(v == v for v in cols.values()), cols
        per = parse_record({**spec.to_dict(), "job_id": "j", "setting_hash": "h", **rec}).instances  # per-instance values
        assert {c for c in cols if c.startswith(("UA", "AS-", "Retention dist.")) and "-floor" not in c} <= set(per)
        safe_floor = next(c for c in cols if c.startswith("AS-safe-floor (mini-shapes-clip-judge"))
        assert safe_floor not in per and -1 <= cols[safe_floor] <= 1  # one value per job, from Original's forget images
        floor = next(c for c in cols if c.startswith("Retention-floor (1−cos mini-shapes-clip-judge image emb., original vs original"))
        assert floor not in per and cols[floor] > 0  # one value per job, read from Original's images only
        floors.add(round(cols[floor], 9))
        assert all(len(p.ids) == 2 and p.value == pytest.approx(cols[c]) for c, p in per.items())
        assert per[ret].ids == per[next(c for c in cols if c.startswith("AS-test"))].ids  # one set, one id list
        if method == "original":
            assert cols[ret] == pytest.approx(0, abs=1e-4)
    assert len(floors) == 1, floors  # the floor does not depend on the method


def test_prepare_caches_everything_build_reads(tmp_path, monkeypatch, task_name="mini-shapes-concept"):
    """The method's process may not write the cache (bench/runner/sandbox.py): the harness's prepare()
    must leave nothing for build() to generate and store (style shares the code)."""
    from tasks.base import TASKS

    monkeypatch.setenv("UNLEARN_BENCH_CACHE", str(tmp_path / "cache"))
    task = TASKS.get(task_name).make(FAST)
    target = task.targets()[0]
    task.prepare(target)
    cached = sorted((tmp_path / "cache").rglob("*.pt"))
    assert cached
    task.build(target, RunContext(device=torch.device("cpu"), seed=0, task_kind=task.kind))
    assert sorted((tmp_path / "cache").rglob("*.pt")) == cached
