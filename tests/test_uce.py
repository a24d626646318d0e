"""UCE: the closed form by hand, its limits, token alignment, and the edit's effect on a tiny model."""
import pytest
import torch

from bench.core.context import Budget, RunContext
from bench.core.data import UnlearnData
from methods.base import METHODS
from methods.uce import UCE, UCEHParams, aligned_spans, closed_form_edit, cross_attention_projections, real_token_counts
from tests.t2i_fixtures import build_tiny_sd


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from bench.core.adapters.text_to_image import TextToImageModel

    return TextToImageModel.from_pretrained_sd(str(build_tiny_sd(tmp_path_factory.mktemp("uce-sd"))))


def test_closed_form_2x3_by_hand():
    # W' = (λW + v kᵀ)(λI + k kᵀ)⁻¹ with λ = 1, k = (1, 1, 0), v = (0, 2): worked out on paper
    W = torch.tensor([[1.0, 0, 0], [0, 1, 0]])
    k, v = torch.tensor([[1.0, 1, 0]]), torch.tensor([[0.0, 2]])
    none = torch.zeros(0, 3), torch.zeros(0, 2)
    Wn = closed_form_edit(W, k, v, *none, lamb=1.0, erase_scale=1.0, preserve_scale=0.1)
    assert torch.allclose(Wn, torch.tensor([[2 / 3, -1 / 3, 0], [1 / 3, 4 / 3, 0]]), atol=1e-6)
    # the edited output moves from Wk = (1, 1) towards v by |k|²/(λ + |k|²) = 2/3
    assert torch.allclose(Wn @ k[0], torch.tensor([1 / 3, 5 / 3]), atol=1e-6)


def test_closed_form_limits():
    g = torch.Generator().manual_seed(0)
    W = torch.randn(5, 4, generator=g)
    k_erase, v_guide = torch.randn(1, 4, generator=g), torch.randn(1, 5, generator=g)
    k_keep = torch.randn(3, 4, generator=g)
    v_keep = k_keep @ W.T
    # λ → 0: the erased key maps exactly onto the guide's value, the preserved keys onto their old values
    Wn = closed_form_edit(W, k_erase, v_guide, k_keep, v_keep, lamb=1e-9, erase_scale=1.0, preserve_scale=0.1)
    assert torch.allclose(k_erase @ Wn.T, v_guide, atol=1e-4)
    assert torch.allclose(k_keep @ Wn.T, v_keep, atol=1e-4)
    # preserve_scale → ∞ with λ = 0.5: preserved outputs unchanged even though the erase pulls on W
    Wp = closed_form_edit(W, k_erase, v_guide, k_keep, v_keep, lamb=0.5, erase_scale=1.0, preserve_scale=1e9)
    assert torch.allclose(k_keep @ Wp.T, v_keep, atol=1e-4)
    # λ → ∞: nothing changes
    assert torch.allclose(closed_form_edit(W, k_erase, v_guide, k_keep, v_keep, 1e12, 1.0, 0.1), W, atol=1e-6)


def test_aligned_spans_reference_rule():
    L, D = 8, 2
    old = torch.arange(L * D, dtype=torch.float).view(L, D)
    new = -old
    # old has 5 tokens (BOS w w w EOS: last word at 3), new has 3 (last word at 1)
    o, n = aligned_spans(old, new, 5, 3, "last")
    assert torch.equal(o, old[3:8]) and torch.equal(n, new[1:6])
    # "differing": identical rows before index 2, so both spans start one token earlier (as far as new allows)
    new2 = old.clone()
    new2[2:] += 100
    o, n = aligned_spans(old, new2, 5, 5, "differing")
    assert torch.equal(o, old[2:]) and torch.equal(n, new2[2:])


def test_token_counts_from_the_tokenizer(tiny):
    enc = tiny.text_encoder
    counts = real_token_counts(enc, ["", "a cat", "a photo of a cat"])
    assert counts[0] == 2 and counts[1] > 2 and counts[2] > counts[1]


FORGET = ["a photo of a cat", "a painting of a cat"]
GUIDE = ["a photo of a dog", "a painting of a dog"]
KEEP = ["a photo of a house", "a painting of a tree", "a photo of a car"]


def _data(n_x=2):
    x = torch.zeros(n_x, 4, 8, 8)
    return UnlearnData(x=x, keys=list(FORGET), paired_keys=list(GUIDE)), UnlearnData(x=torch.zeros(3, 4, 8, 8), keys=list(KEEP))


def _distances(model, edited):
    """(‖ε'(c_f) − ε(c_g)‖, ‖ε(c_f) − ε(c_g)‖, ‖ε'(c_r) − ε(c_r)‖, ‖ε(c_r) − ε(c_g)‖) at fixed x_t, t."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(len(FORGET), *model.sample_shape, generator=g)
    t = torch.tensor([300, 700])
    with torch.no_grad():
        f, gd = model.condition(FORGET), model.condition(GUIDE)
        r = model.condition(KEEP[:2])
        e_fg = (edited.predict_noise(x, t, f) - model.predict_noise(x, t, gd)).norm()
        o_fg = (model.predict_noise(x, t, f) - model.predict_noise(x, t, gd)).norm()
        e_r = (edited.predict_noise(x, t, r) - model.predict_noise(x, t, r)).norm()
        o_rg = (model.predict_noise(x, t, r) - model.predict_noise(x, t, gd)).norm()
    return float(e_fg), float(o_fg), float(e_r), float(o_rg)


def run_uce(model, **hp):
    edited = model.trainable_copy()
    forget, remain = _data()
    ctx = RunContext(device=torch.device("cpu"), seed=0, task_kind="concept")
    stats = UCE(UCEHParams(**hp)).unlearn(edited, forget, remain, Budget(), ctx)
    return edited, stats


def test_uce_maps_forget_onto_guide_and_keeps_the_rest(tiny):
    before = {n: p.clone() for n, p in tiny.denoiser.named_parameters()}
    edited, stats = run_uce(tiny)  # reference settings: λ 0.5, erase 1, preserve 0.1
    e_fg, o_fg, _, _ = _distances(tiny, edited)
    # the forget prompts now predict (nearly) what the guide prompts predicted
    assert e_fg < 0.25 * o_fg, (e_fg, o_fg)
    # only attn2.to_k / to_v changed; the original model is untouched
    changed = {n for n, p in edited.denoiser.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(".attn2.to_k." in n or ".attn2.to_v." in n for n in changed)
    assert any(".attn2.to_v." in n for n in changed) and any(".attn2.to_k." in n for n in changed)
    assert all(torch.equal(p, before[n]) for n, p in tiny.denoiser.named_parameters())
    assert stats["edited_matrices"] == len(cross_attention_projections(tiny.denoiser, True))
    # a heavier preserve term keeps the remain prompts' predictions while still pulling forget to guide
    edited, _ = run_uce(tiny, preserve_scale=10.0)
    e_fg, o_fg, e_r, o_rg = _distances(tiny, edited)
    assert e_r < 0.15 * o_rg, (e_r, o_rg)
    assert e_fg < 0.75 * o_fg, (e_fg, o_fg)


def test_uce_swapped_guide_does_not_erase(tiny):
    """The wrong direction (guide mapped onto the forget prompt) leaves the forget prediction where it was."""
    edited = tiny.trainable_copy()
    forget = UnlearnData(x=torch.zeros(2, 4, 8, 8), keys=list(GUIDE), paired_keys=list(FORGET))
    remain = UnlearnData(x=torch.zeros(3, 4, 8, 8), keys=list(KEEP))
    UCE().unlearn(edited, forget, remain, Budget(), RunContext(device=torch.device("cpu"), seed=0, task_kind="concept"))
    e_fg, o_fg, _, _ = _distances(tiny, edited)
    assert e_fg > 0.5 * o_fg


def test_uce_registered_for_concept_and_style_only():
    cls = METHODS.get("uce")
    assert cls is UCE and set(cls.task_kinds) == {"concept", "style"}
    with pytest.raises(ValueError):
        UCEHParams(guide="wrong")


def test_preserve_scale_follows_the_references_rule(tiny):
    """train_erase.py: max(0.1, 1/len(retain_texts)); "" alone (preserve=empty) gives 1.0, not 0.1."""
    _, alone = run_uce(tiny, preserve="empty")
    assert alone["preserved_prompts"] == 1 and alone["preserve_scale"] == 1.0
    _, many = run_uce(tiny)
    assert many["preserve_scale"] == max(0.1, 1 / many["preserved_prompts"])
    _, given = run_uce(tiny, preserve="empty", preserve_scale=0.1)  # a value set by hand wins
    assert given["preserve_scale"] == 0.1
    a, _ = run_uce(tiny, preserve="empty")
    b, _ = run_uce(tiny, preserve="empty", preserve_scale=0.1)
    assert any(not torch.equal(p, q) for p, q in zip(a.denoiser.parameters(), b.denoiser.parameters()))
