"""SalUn: global saliency mask (kthvalue, no argsort), relabelling, frozen weights stay bit-identical."""
import pytest
import torch

from bench.core.adapters.class_conditional import ClassConditionalModel
from bench.core.context import Budget, RunContext
from bench.core.data import UnlearnData
from methods.base import METHODS
from methods.saliency import saliency_masks
from methods.salun import REFERENCE_CLASS_ALPHA, SalUn, guided_prediction, relabel_classes

UNET = dict(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
            block_out_channels=(8, 16), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=4, attention_head_dim=4)


def _scores(seed, shapes=((7, 3), (11,), (2, 3, 4), (1,), (5, 5))):
    gen = torch.Generator().manual_seed(seed)
    return {f"p{i}": torch.randn(s, generator=gen).abs() for i, s in enumerate(shapes)}


@pytest.mark.parametrize("fraction", [0.0, 0.05, 0.3, 0.5, 0.77, 0.9, 1.0])
def test_mask_keeps_requested_fraction(fraction):
    scores = _scores(0, shapes=((64, 32), (100,), (3, 5, 7), (1,)))
    total = sum(s.numel() for s in scores.values())
    masks, st = saliency_masks(scores, fraction)
    assert st.total == total and st.requested == int(total * fraction)
    assert st.kept == st.requested == sum(int(m.sum()) for m in masks.values())
    for n, m in masks.items():
        assert m.dtype == torch.bool and m.shape == scores[n].shape


@pytest.mark.parametrize("select", ["top", "bottom"])
def test_mask_equals_sort_reference(select):
    """Property: the kthvalue mask is exactly the top-k (bottom-k) set a full sort would pick."""
    gen = torch.Generator().manual_seed(1)
    for seed in range(40):
        shapes = [tuple(int(d) for d in torch.randint(1, 6, (int(torch.randint(1, 4, (1,), generator=gen)),), generator=gen))
                  for _ in range(int(torch.randint(1, 6, (1,), generator=gen)))]
        scores = _scores(seed, shapes)
        fraction = float(torch.rand(1, generator=gen))
        masks, st = saliency_masks(scores, fraction, select)
        flat = torch.cat([s.reshape(-1) for s in scores.values()])
        k = int(flat.numel() * fraction)
        order = torch.sort(flat, descending=(select == "top")).indices
        ref = torch.zeros(flat.numel(), dtype=torch.bool)
        ref[order[:k]] = True
        got = torch.cat([m.reshape(-1) for m in masks.values()])
        assert torch.equal(got, ref), (seed, select, fraction)


def test_mask_uses_no_sort(monkeypatch):
    def banned(*a, **k):
        raise AssertionError("saliency masks must not sort")

    for obj in (torch, torch.Tensor):
        for fn in ("sort", "argsort", "topk", "msort"):
            if hasattr(obj, fn):
                monkeypatch.setattr(obj, fn, banned)
    _, st = saliency_masks(_scores(3), 0.5)
    assert st.kept == st.requested


def test_tie_and_zero_rules():
    # ties at the threshold are all kept
    masks, st = saliency_masks({"a": torch.tensor([3.0, 2.0, 2.0, 2.0, 1.0, 0.5, 0.2, 0.1])}, 0.25)
    assert st.requested == 2 and st.threshold == 2.0 and st.kept == 4
    assert masks["a"].tolist() == [True] * 4 + [False] * 4
    # a zero score is never salient, even when the cut falls on zeros
    masks, st = saliency_masks({"a": torch.tensor([1.0, 0.0]), "b": torch.zeros(2)}, 0.5)
    assert st.threshold == 0.0 and st.kept == 1 and masks["a"].tolist() == [True, False] and not masks["b"].any()


def test_relabel_next_and_random():
    labels = torch.tensor([0, 3, 9, 9, 4])
    gen = torch.Generator().manual_seed(0)
    assert relabel_classes(labels, 10, "next", gen).tolist() == [1, 4, 0, 0, 5]
    big = torch.arange(10).repeat(200)
    r = relabel_classes(big, 10, "random", gen)
    assert (r != big).all() and r.min() >= 0 and r.max() <= 9
    for c in range(10):  # every other class is reachable
        assert set(r[big == c].tolist()) == set(range(10)) - {c}


def _class_model():
    return ClassConditionalModel.from_config(UNET, {"num_train_timesteps": 100}, ["a", "b", "c"], seed=0)


def test_guided_prediction_is_reference_form():
    m = _class_model()
    x, t, c = torch.randn(3, 1, 8, 8), torch.tensor([5, 50, 90]), m.condition([0, 1, 2])
    with torch.no_grad():
        eps_c, eps_u = m.predict_noise(x, t, c), m.predict_noise(x, t, m.null_condition(3))
        torch.testing.assert_close(guided_prediction(m, x, t, c, 2.0), 3.0 * eps_c - 2.0 * eps_u, atol=1e-5, rtol=1e-4)


def _class_data(gen):
    forget = UnlearnData(x=torch.randn(12, 1, 8, 8, generator=gen), keys=[0] * 12)
    remain = UnlearnData(x=torch.randn(24, 1, 8, 8, generator=gen), keys=[1, 2] * 12)
    return forget, remain


@pytest.mark.parametrize("clip", [None, 1.0])
def test_masked_weights_stay_bit_identical(clip):
    m = _class_model()
    before = {n: p.detach().clone() for n, p in m.denoiser.named_parameters()}
    forget, remain = _class_data(torch.Generator().manual_seed(2))
    hp = SalUn.default_hparams("class", lr=1e-2, steps=6, batch_size=6, clip_grad_norm=clip)
    method = SalUn(hp)
    ctx = RunContext(device="cpu", seed=0, task_kind="class", num_classes=3)
    stats = method.unlearn(m, forget, remain, Budget(), ctx)
    assert ctx.steps_done == 6
    total = sum(p.numel() for p in before.values())
    assert stats["mask_kept"] == int(0.5 * total) and abs(stats["mask_kept_fraction"] - 0.5) < 1e-3
    moved = 0
    for n, p in m.denoiser.named_parameters():
        keep = method.masks[n]
        assert torch.equal(p.detach()[~keep], before[n][~keep]), n  # bitwise, not approx
        moved += int((p.detach()[keep] != before[n][keep]).sum())
    assert moved > 0.9 * stats["mask_kept"]


def test_text_model_uses_paired_prompts(tmp_path):
    from bench.core.adapters.text_to_image import TextToImageModel
    from tests.t2i_fixtures import build_tiny_sd

    m = TextToImageModel.from_pretrained_sd(str(build_tiny_sd(tmp_path / "sd")))
    before = {n: p.detach().clone() for n, p in m.denoiser.named_parameters()}
    gen = torch.Generator().manual_seed(0)
    forget = UnlearnData(x=torch.randn(4, 4, 8, 8, generator=gen), keys=["a nude man"] * 2 + ["a nude cat"] * 2,
                         paired_keys=["a man"] * 2 + ["a cat"] * 2)
    remain = UnlearnData(x=torch.randn(4, 4, 8, 8, generator=gen), keys=["a man", "a cat"] * 2)
    hp = SalUn.default_hparams("concept", lr=1e-3, steps=2, batch_size=2)
    assert hp.mask_guidance == 7.5 and hp.clip_grad_norm is None and hp.cond_drop_prob == 0.0
    method = SalUn(hp)
    stats = method.unlearn(m, forget, remain, Budget(), RunContext(device="cpu", seed=0, task_kind="concept"))
    assert stats["relabel"] == "paired_keys" and stats["mask_batches"] == 2
    for n, p in m.denoiser.named_parameters():
        keep = method.masks[n]
        assert torch.equal(p.detach()[~keep], before[n][~keep]), n


def test_registered_with_reference_defaults():
    cls = METHODS.get("salun")
    c, k, s = cls.default_hparams("class"), cls.default_hparams("concept"), cls.default_hparams("style")
    assert (c.lr, c.steps, c.batch_size, c.sparsity, c.relabel) == (1e-4, 1000, 128, 0.5, "next")
    assert c.alpha == pytest.approx(3.072) == REFERENCE_CLASS_ALPHA and c.clip_grad_norm == 1.0
    assert (k.lr, k.batch_size, k.alpha, s.alpha) == (1e-5, 8, 0.1, 0.5)


def _reference_mask_scores(method, model, forget, seed, clip):
    """The current DDPM generate_mask by hand: per batch the pixel-sum loss on the guided prediction,
    its gradient clipped to `clip` (torch's rule), the SIGNED gradients summed, |·| at the end."""
    from methods.training import eval_mode

    hp = method.hparams
    g = torch.Generator().manual_seed(seed)
    params = list(model.denoiser.parameters())
    total, norms = [torch.zeros_like(p) for p in params], []
    with eval_mode(model.denoiser):
        for chunk in forget.chunks(hp.batch_size):
            x_t, t, noise = method._noised(model, chunk.x, g)
            pred = guided_prediction(model, x_t, t, model.condition(chunk.keys), hp.mask_guidance)
            grads = torch.autograd.grad((pred - noise).pow(2).sum(dim=(1, 2, 3)).mean(), params, allow_unused=True)
            grads = [gr if gr is not None else torch.zeros_like(p) for gr, p in zip(grads, params)]
            norm = float(torch.sqrt(sum((gr.double() ** 2).sum() for gr in grads)))
            norms.append(norm)
            scale = min(1.0, clip / (norm + 1e-6)) if clip is not None else 1.0
            total = [a + gr * scale for a, gr in zip(total, grads)]
    names = [n for n, _ in model.denoiser.named_parameters()]
    return {n: s.abs() for n, s in zip(names, total)}, norms


def test_class_mask_is_the_references_sum_of_per_batch_clipped_gradients_and_keeps_the_top():
    """Reference formula (current DDPM generate_mask), on three forget batches; the default hparams are used,
    so the mask must be the TOP half (mask_select's default) of |Σ_b clip(g_b)|."""
    forget, _ = _class_data(torch.Generator().manual_seed(2))
    method = SalUn(SalUn.default_hparams("class", batch_size=4))
    model = _class_model()
    masks, stats = method.compute_masks(model, forget, RunContext(device="cpu", seed=0, task_kind="class", num_classes=3))
    assert stats["mask_batches"] == 3
    scores, norms = _reference_mask_scores(method, _class_model(), forget, 0, clip=1.0)
    assert max(norms) > 1.0  # the clip engages: the test can tell clipped from unclipped
    want, _ = saliency_masks(scores, 0.5, "top")
    got = torch.cat([masks[n].flatten() for n in scores])
    assert torch.equal(got, torch.cat([want[n].flatten() for n in scores]))
    unclipped, _ = saliency_masks(_reference_mask_scores(method, _class_model(), forget, 0, clip=None)[0], 0.5, "top")
    bottom, _ = saliency_masks(scores, 0.5, "bottom")
    assert not torch.equal(got, torch.cat([unclipped[n].flatten() for n in scores]))  # the old behaviour differs
    assert not torch.equal(got, torch.cat([bottom[n].flatten() for n in scores]))  # and so would mask_select bottom
