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
