"""Concept Ablation (model-based): the target prompt learns the anchor prompt's prediction, only attn2 k/v move."""
import math

import pytest
import torch

from bench.core.context import Budget, RunContext
from bench.core.data import UnlearnData
from methods.base import METHODS
from methods.concept_ablation import CAHParams, ConceptAblation, ca_parameter_names
from tests.t2i_fixtures import build_tiny_sd

TARGET = ["a photo of a cat", "a painting of a cat"]
ANCHOR = ["a photo of a dog", "a painting of a dog"]
FAST = dict(lr=3e-3, steps=40, batch_size=4, anchor_images=4, anchor_sample_steps=2, anchor_guidance=1.0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from bench.core.adapters.text_to_image import TextToImageModel

    return TextToImageModel.from_pretrained_sd(str(build_tiny_sd(tmp_path_factory.mktemp("ca-sd"))))


def run_ca(model, target=TARGET, anchor=ANCHOR, **hp):
    edited = model.trainable_copy()
    forget = UnlearnData(x=torch.zeros(2, *model.sample_shape), keys=list(target), paired_keys=list(anchor))
    remain = UnlearnData(x=torch.zeros(2, *model.sample_shape), keys=["a photo of a house"] * 2)
    ctx = RunContext(device=torch.device("cpu"), seed=0, task_kind="concept")
    stats = ConceptAblation(CAHParams(**{**FAST, **hp})).unlearn(edited, forget, remain, Budget(), ctx)
    return edited, stats, ctx


def gap(model, edited):
    """(‖ε'(x_t, c_target) − ε(x_t, c_anchor)‖, ‖ε(x_t, c_target) − ε(x_t, c_anchor)‖) on fixed noisy inputs."""
    g = torch.Generator().manual_seed(3)
    x = torch.randn(8, *model.sample_shape, generator=g)
    t = torch.randint(0, 1000, (8,), generator=g)
    with torch.no_grad():
        ct, ca = model.condition(TARGET * 4), model.condition(ANCHOR * 4)
        ref = model.predict_noise(x, t, ca)
        return float((edited.predict_noise(x, t, ct) - ref).norm()), float((model.predict_noise(x, t, ct) - ref).norm())


def test_ca_pulls_target_onto_anchor_and_trains_only_cross_attention_kv(tiny):
    before = {n: p.clone() for n, p in tiny.denoiser.named_parameters()}
    edited, stats, ctx = run_ca(tiny)
    after, start = gap(tiny, edited)
    assert after < 0.5 * start, (after, start)
    changed = {n for n, p in edited.denoiser.named_parameters() if not torch.equal(p, before[n])}
    assert changed == set(ca_parameter_names(before, "cross-attn-kv")) and changed
    assert ctx.steps_done == FAST["steps"] and ctx.images_generated == FAST["anchor_images"]
    assert stats["anchor_images"] == FAST["anchor_images"]


def test_ca_current_teacher_option_runs(tiny):
    """The reference code's moving teacher (no_grad on the trained model) is a different objective from
    the frozen one; on this tiny random model it drifts even at lr 1e-4 (gap 0.67 → 1.04 seen), which is
    why `frozen` is the default. Here: it runs its steps and stays finite."""
    edited, _, ctx = run_ca(tiny, teacher="current", lr=1e-4)
    after, start = gap(tiny, edited)
    frozen_after, _ = gap(tiny, run_ca(tiny, lr=1e-4)[0])
    assert ctx.steps_done == FAST["steps"] and math.isfinite(after) and after != frozen_after, (after, start)


def test_ca_swapped_target_and_anchor_does_not_ablate(tiny):
    """Training the anchor prompt towards the target (roles swapped) leaves the target's prediction where it was."""
    edited, _, _ = run_ca(tiny, target=ANCHOR, anchor=TARGET)
    after, start = gap(tiny, edited)
    assert after > 0.6 * start, (after, start)


def test_ca_budget_caps_steps(tiny):
    edited = tiny.trainable_copy()
    forget = UnlearnData(x=torch.zeros(2, *tiny.sample_shape), keys=list(TARGET), paired_keys=list(ANCHOR))
    ctx = RunContext(device=torch.device("cpu"), seed=0, task_kind="concept")
    ConceptAblation(CAHParams(**FAST)).unlearn(edited, forget, forget, Budget(max_steps=2), ctx)
    assert ctx.steps_done == 2


def test_ca_registered_for_concept_and_style_only():
    cls = METHODS.get("ca")
    assert cls is ConceptAblation and set(cls.task_kinds) == {"concept", "style"}
    names = ["down.attn2.to_k.weight", "down.attn2.to_v.weight", "down.attn2.to_q.weight", "down.attn1.to_k.weight"]
    assert ca_parameter_names(names, "cross-attn-kv") == names[:2]
    assert ca_parameter_names(names, "cross-attn") == names[:3]


def test_nudity_recipe_on_sd_nudity_and_the_style_recipe_elsewhere():
    from tasks.base import TASKS

    assert TASKS.get("sd-nudity").defaults_key() == "concept/nudity"
    nude = ConceptAblation.default_hparams(TASKS.get("sd-nudity").defaults_key())
    assert (nude.parameters, nude.lr, nude.steps, nude.prior_weight, nude.anchor_negative) == ("attn", 6.4e-5, 400, 1.0, "nudity, nsfw")
    for task in ("sd-vangogh", "mini-shapes-concept", "mini-shapes-style"):
        hp = ConceptAblation.default_hparams(TASKS.get(task).defaults_key())
        assert (hp.parameters, hp.lr, hp.steps, hp.prior_weight, hp.anchor_negative) == ("cross-attn-kv", 1.6e-5, 100, 0.0, "")
        assert hp.anchor_images == 1000  # the reference's num_class_images (200 is its prompt count)
    assert ConceptAblation.default_hparams("concept/nudity", lr=1e-5).lr == 1e-5  # a suite's value still wins
    names = ["d.attn1.to_q.weight", "d.attn1.to_out.0.weight", "d.attn2.to_k.weight", "d.attn2.to_v.bias", "d.ff.net.0.proj.weight",
             "d.norm1.weight", "d.attn1.norm_q.weight"]
    assert ca_parameter_names(names, "attn") == names[:4]


def test_anchor_pairs_are_drawn_from_all_of_the_forget_set(tiny):
    """Cycling the pairs in order would only ever use the first `anchor_images` of them."""
    n = 12
    forget = UnlearnData(x=torch.zeros(n, *tiny.sample_shape), keys=[f"a cat {i}" for i in range(n)],
                         paired_keys=[f"a dog {i}" for i in range(n)])
    ca = ConceptAblation(CAHParams(**{**FAST, "anchor_images": 4}))
    _, targets, anchors = ca.anchor_set(tiny.fresh_copy(), forget, RunContext(device=torch.device("cpu"), seed=0, task_kind="concept"))
    assert len(targets) == 4 and all(t.replace("cat", "dog") == a for t, a in zip(targets, anchors))
    assert any(int(t.split()[-1]) >= 4 for t in targets)


def test_negative_prompt_guides_the_anchor_images(tiny):
    model = tiny.fresh_copy()
    asked = []
    real = model.condition
    model.condition = lambda keys: asked.extend(keys) or real(keys)
    forget = UnlearnData(x=torch.zeros(2, *tiny.sample_shape), keys=list(TARGET), paired_keys=list(ANCHOR))
    guided = {**FAST, "anchor_guidance": 3.0}  # at guidance 1 there is no unconditional branch to replace
    ca = ConceptAblation(CAHParams(**{**guided, "anchor_negative": "nudity, nsfw"}))
    with_negative, _, _ = ca.anchor_set(model, forget, RunContext(device=torch.device("cpu"), seed=0, task_kind="concept"))
    assert "nudity, nsfw" in asked
    plain, _, _ = ConceptAblation(CAHParams(**guided)).anchor_set(tiny.fresh_copy(), forget,
                                                                RunContext(device=torch.device("cpu"), seed=0, task_kind="concept"))
    assert not torch.allclose(with_negative, plain)  # the same seeds, another unconditional branch
    # the adapter's rule: ε_u(negative) + g·(ε_c − ε_u(negative))
    x, t, c, u = torch.randn(2, *tiny.sample_shape), torch.tensor([10, 500]), tiny.condition(ANCHOR), tiny.condition(["nsfw"] * 2)
    with torch.no_grad():
        want = tiny.predict_noise(x, t, u) + 3.0 * (tiny.predict_noise(x, t, c) - tiny.predict_noise(x, t, u))
        torch.testing.assert_close(tiny.guided_noise(x, t, c, 3.0, uncond=u), want, atol=1e-5, rtol=1e-4)


def test_prior_preservation_term_runs_on_anchor_images_under_the_anchor_prompt(tiny):
    parts = []

    class Ctx(RunContext):
        def step(self, loss, **p):
            parts.append(p)
            super().step(loss, **p)

    for weight in (0.0, 1.0):
        parts.clear()
        edited = tiny.trainable_copy()
        forget = UnlearnData(x=torch.zeros(2, *tiny.sample_shape), keys=list(TARGET), paired_keys=list(ANCHOR))
        ConceptAblation(CAHParams(**{**FAST, "steps": 3, "prior_weight": weight})).unlearn(
            edited, forget, forget, Budget(), Ctx(device=torch.device("cpu"), seed=0, task_kind="concept"))
        if weight == 0.0:
            assert all("prior" not in p for p in parts)
        else:
            assert len(parts) == 3 and all(float(p["prior"]) > 0 for p in parts)
