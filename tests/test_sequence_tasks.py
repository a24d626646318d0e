"""Sequential unlearning, the task side (tasks/*.py `erased`, metrics/sequence.py): a chain's later step
is not asked to keep what it erased before, it is asked again about it, and an ordinary build is unchanged."""
import pytest
import torch

from bench.core.context import RunContext
from bench.core.errors import ConfigError
from metrics.classification import ClassAccuracy
from metrics.sequence import EarlierUA
from metrics.zero_shot import ZeroShotUA
from tasks.base import TASKS
from tasks.mini import shapes
from tasks.mini_shapes import MODEL_DIR, concept_sets, style_sets
from tests.helpers import FAST_DIGITS

CTX = RunContext(device="cpu", seed=0, task_kind="class")


@pytest.fixture(scope="module")
def digits_task():
    return TASKS.get("mini-digits-class").make({**FAST_DIGITS, "forget_samples": 24})


def test_digits_leave_the_erased_out_of_every_keep_set(digits_task):
    plain = digits_task.build("5", CTX)
    after = digits_task.build("5", CTX, erased=("3", "8"))
    assert torch.equal(after.forget.x, plain.forget.x)  # the target's own forget data and set are unchanged
    assert after.evaluation.eval_sets["forget"] == plain.evaluation.eval_sets["forget"]
    assert set(after.remain.keys) == set(range(10)) - {3, 5, 8}
    assert set(after.evaluation.eval_sets["remain"][0]) == set(range(10)) - {3, 5, 8}
    assert len(after.evaluation.fid_reference) < len(plain.evaluation.fid_reference)
    assert not {3, 8} & set(after.remain.meta["neighbours"])
    assert [(e.name, e.class_id) for e in after.evaluation.earlier] == [("3", 3), ("8", 8)]  # in order
    # each earlier set is the one that target had as the target: its class, the forget set's seeds
    as_target = digits_task.build("3", CTX).evaluation.eval_sets["forget"]
    assert after.evaluation.earlier[0].eval_set == as_target


def test_an_ordinary_build_is_unchanged_by_the_keyword(digits_task):
    a, b = digits_task.build("5", CTX), digits_task.build("5", CTX, erased=())
    assert a.evaluation.eval_sets == b.evaluation.eval_sets and a.remain.keys == b.remain.keys
    assert (a.evaluation.fid_reference == b.evaluation.fid_reference).all() and b.evaluation.earlier == []
    assert "earlier" not in a.evaluation.provided()


@pytest.mark.parametrize("erased", [("3", "3"), ("5",), ("11",)])
def test_bad_earlier_targets_are_one_error(digits_task, erased):
    with pytest.raises(ConfigError):
        digits_task.build("5", CTX, erased=erased)


def test_shapes_sets_leave_the_erased_out_and_keep_the_rest():
    plain, after = concept_sets("circle", 16, 16), concept_sets("circle", 16, 16, ("cross", "square"))
    assert after["forget"] == plain["forget"] and after["eval_forget"] == plain["eval_forget"]
    for name in ("remain", "eval_remain_train", "eval_remain_test"):
        words = {w for p in after[name] for w in p.split()}
        assert not words & {"cross", "square", "circle"}, name
        assert words & {"triangle", "ring", "diamond"}, name
    assert concept_sets("circle", 16, 16, ()) == plain


def test_styles_fall_back_to_plain_once_every_other_style_is_erased():
    plain, after = style_sets("striped", 16, 16), style_sets("striped", 16, 16, ("swirl", "dotted"))
    assert after["forget"] == plain["forget"] and after["eval_forget"] == plain["eval_forget"]
    assert any("swirl" in p or "dotted" in p for p in plain["remain"])
    for name in ("remain", "eval_remain_train", "eval_remain_test"):
        assert not any(f"{st} style" in p for p in after[name] for st in shapes.STYLES if st != "plain"), name
    assert style_sets("striped", 16, 16, ()) == plain


def test_shapes_earlier_targets_carry_their_own_judge_label():
    task = TASKS.get("mini-shapes-concept").make({"eval_prompts": 8})
    (earlier,) = task.earlier(("cross",))
    assert earlier.zero_shot.labels[earlier.zero_shot.target] == "a cross"
    assert earlier.eval_set[0] == concept_sets("cross", 32, 8)["eval_forget"]
    with pytest.raises(ConfigError, match="neighbours"):
        TASKS.get("mini-shapes-concept").make({"neighbours": True}).check_erased("circle", ("cross",))


def _ua(inst, model):
    inst._samples.clear()
    out = ClassAccuracy().compute(inst, model, inst.model, None)
    return next(v.value for k, v in out.items() if k.startswith("UA"))


def _earlier(inst, model):
    inst._samples.clear()
    (value,) = EarlierUA().compute(inst, model, inst.model, RunContext(device="cpu", seed=0, task_kind="class")).values()
    return value


def _hide(model, digit, behind):
    """The digit's class embedding replaced by another's: the model draws `behind` when asked for `digit`."""
    hidden = model.fresh_copy()
    with torch.no_grad():
        hidden.denoiser.class_embedding.weight[digit] = hidden.denoiser.class_embedding.weight[behind]
    return hidden


def test_earlier_ua_asks_about_the_earlier_target_with_the_ua_rule(digits_task):
    inst = digits_task.build("5", CTX, erased=("3",))
    original = inst.model.fresh_copy()
    as_target = digits_task.build("3", CTX)
    # Original still draws 3: its UA-earlier is exactly its UA on 3 as the target (same images, same rule)
    assert _earlier(inst, original) == pytest.approx(_ua(as_target, original), abs=1e-9)
    assert _earlier(inst, original) < 0.3
    # the earlier target hidden: UA-earlier high; only the current target hidden: UA-earlier stays low
    assert _earlier(inst, _hide(original, 3, 1)) > 0.7
    assert _earlier(inst, _hide(original, 5, 1)) < 0.3


def test_earlier_ua_is_the_mean_over_every_earlier_target(digits_task):
    inst = digits_task.build("5", CTX, erased=("3", "8"))
    hidden = _hide(inst.model.fresh_copy(), 3, 1)  # only the first earlier target hidden
    by_hand = (_ua(digits_task.build("3", CTX), hidden) + _ua(digits_task.build("8", CTX), hidden)) / 2
    assert _earlier(inst, hidden) == pytest.approx(by_hand, abs=1e-9)
    assert 0.3 < by_hand < 0.7  # neither target alone: the first high, the second low


@pytest.mark.skipif(not (MODEL_DIR / "unlearn_bench.json").exists(), reason="committed mini-shapes checkpoint absent")
def test_shapes_earlier_ua_asks_the_judge_for_the_earlier_shape(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARN_BENCH_CACHE", str(tmp_path))
    task = TASKS.get("mini-shapes-concept").make({"forget_pairs": 2, "eval_prompts": 16, "eval_sample_steps": 10})
    ctx = RunContext(device="cpu", seed=0, task_kind="concept")
    inst = task.build("circle", ctx, erased=("cross",))
    original = inst.model.fresh_copy()
    as_target = task.build("cross", ctx)
    (ua_col,) = ZeroShotUA().columns(as_target)
    ua_on_cross = ZeroShotUA().compute(as_target, original, original, None)[ua_col].value
    # Original draws crosses: its UA-earlier is its UA on cross as the target, by cross's own label (asked
    # with the current target's label, circle, nearly every cross would be "not circle": UA ≈ 1)
    assert _earlier(inst, original) == pytest.approx(ua_on_cross, abs=1e-9)
    assert ua_on_cross < 0.5
