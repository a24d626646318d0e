"""Behavioural tests on tiny models: each fails if a method's forget objective flips sign, if its
target is swapped for the wrong one, or if its update skips the part that makes the method what it is.
"""
import pytest
import torch

import methods.rgd as rgd_module
from bench.core.context import Budget
from bench.core.data import UnlearnData, paired_batches
from bench.core.denoising import noised_batch
from methods.base import METHODS, make_hparams
from methods.gradients import flatten_grads, restricted_update
from methods.remain_sampling import remain_subset
from tests.tiny_models import class_ctx, class_data, fixed_loss, tiny_class_model


def _run(name, hparams, model=None, data=None, steps=None, seed=0):
    model = model or tiny_class_model()
    forget, remain = data or class_data()
    cls = METHODS.get(name)
    method = cls(cls.default_hparams("class", **hparams))
    stats = method.unlearn(model, forget, remain, Budget(max_steps=steps), class_ctx(seed))
    return model, method, stats


# -- the forget objective's sign and target ------------------------------------------------------

@pytest.mark.parametrize("name", ["rgd", "rg", "graddiff"])
def test_ascent_methods_raise_the_forget_loss_and_keep_the_remain_loss(name):
    """A few steps raise L_f on the forget set far more than they move L_r: fails if the ascent sign
    flips (L_f falls) or forget and remain are swapped (L_f is descended, L_r ascended)."""
    forget, remain = class_data()
    model = tiny_class_model()
    lf0, lr0 = fixed_loss(model, forget), fixed_loss(model, remain)
    weight = {"graddiff": "alpha"}.get(name, "lam")
    _run(name, {"lr": 3e-3, "steps": 15, "batch_size": 8, "forget_truncation": "none", weight: 1.0}, model, (forget, remain))
    lf1, lr1 = fixed_loss(model, forget), fixed_loss(model, remain)
    assert lf1 > 1.5 * lf0, (lf0, lf1)
    assert lf1 - lf0 > 3 * (lr1 - lr0), (lf0, lf1, lr0, lr1)


def _spy_grads(monkeypatch):
    """Record every gradient list RGD's loop takes (g_f, then g_r, per step)."""
    seen = []
    original = rgd_module.grads_of

    def spy(params):
        seen.append(original(params))
        return seen[-1]

    monkeypatch.setattr(rgd_module, "grads_of", spy)
    return seen


def test_rgd_hands_the_optimiser_the_restricted_direction(monkeypatch):
    """After one step p.grad holds d; it must equal the flat-vector reference formula on the recorded
    g_f, g_r (fails if the projection is skipped, λ misapplied, or g_f/g_r swapped)."""
    conflicts = 0
    for seed in range(6):
        seen = _spy_grads(monkeypatch)
        model, _, stats = _run("rgd", {"lr": 1e-3, "steps": 1, "batch_size": 8, "lam": 2.0, "forget_truncation": "none"}, seed=seed)
        params = list(model.denoiser.parameters())
        g_f, g_r = (torch.cat([g.reshape(-1) for g in gs]) for gs in seen)
        expected = restricted_update(g_f, g_r, 2.0)
        assert torch.allclose(flatten_grads(params), expected, rtol=1e-4, atol=1e-6)
        conflicts += stats["conflict_fraction"] > 0
        monkeypatch.undo()
    assert conflicts >= 1, "no conflicting step among the seeds: the projection branch was not exercised"


def test_rgd_remain_gradient_is_the_mean_over_the_whole_subset():
    """remain_gradient=subset: ∇ of (1/n)·Σ_i ℓ_i over every subset example (uneven chunks 4+4+2),
    recomputed per example with the same noise; fails for a mean of chunk means, one chunk or a batch."""
    model = tiny_class_model()
    _, remain = class_data()
    data = remain.subset(range(10))
    hp = make_hparams(METHODS.get("rgd"), {"remain_chunk": 4})
    params = list(model.denoiser.parameters())
    model.denoiser.zero_grad(set_to_none=True)
    value = rgd_module.remain_gradient_loss(model, data, hp, torch.Generator().manual_seed(7), None)
    got = flatten_grads(params)
    model.denoiser.zero_grad(set_to_none=True)
    g = torch.Generator().manual_seed(7)
    total = 0.0
    for chunk in data.chunks(4):  # the same draws, in the same order
        x_t, t, noise = noised_batch(model, chunk.x, g)
        per_example = (model.predict_noise(x_t, t, model.condition(chunk.keys)) - noise).pow(2).flatten(1).mean(1)
        total = total + per_example.sum() / len(data)
    total.backward()
    assert torch.allclose(got, flatten_grads(params), rtol=1e-4, atol=1e-7)
    assert value == pytest.approx(float(total), rel=1e-5)


def test_rgd_takes_the_whole_subset_every_step_and_rg_a_batch(monkeypatch):
    """RGD's remain gradient sees all of the balanced subset each step, RG's one minibatch of it."""
    for name, expected in (("rgd", 12), ("rg", 4)):  # subset = 6 per class × 2 classes; batch 4
        sizes = []
        original = rgd_module.remain_loss
        monkeypatch.setattr(rgd_module, "remain_loss", lambda m, x0, c, g, teacher=None, sizes=sizes, original=original:
                            sizes.append(len(x0)) or original(m, x0, c, g, teacher))
        _, _, stats = _run(name, {"lr": 1e-4, "steps": 2, "batch_size": 4, "remain_chunk": 5})
        monkeypatch.undo()
        assert stats["remain_set_size"] == 12
        assert sum(sizes) == 2 * expected, (name, sizes)


def test_normalize_truncation_makes_the_step_pure_remain_descent(monkeypatch):
    """Once L_f > m the reference's L/‖L‖ has zero gradient: g_f = 0, no conflict, d = λ·g_r exactly."""
    seen = _spy_grads(monkeypatch)
    model, _, stats = _run("rgd", {"lr": 1e-3, "steps": 1, "batch_size": 8, "lam": 1.6,
                                   "forget_truncation": "normalize", "truncation_threshold": 0.0})
    g_f, g_r = seen
    assert all(torch.count_nonzero(g) == 0 for g in g_f)
    assert stats["conflict_fraction"] == 0
    for p, r in zip(model.denoiser.parameters(), g_r):
        assert torch.equal(p.grad, 1.6 * r)


def test_graddiff_and_rg_draw_remain_batches_from_rgds_balanced_subset(monkeypatch):
    """The reference's GradDiff/RG cycle minibatches of the same 50-per-class subset RGD averages over."""
    forget, remain = class_data(per_class=20)
    remain.x = torch.arange(len(remain), dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 8, 8).clone() / 100
    import methods.graddiff as gd

    seen = set()
    original = gd.remain_loss
    monkeypatch.setattr(gd, "remain_loss", lambda m, x0, c, g, teacher=None: seen.update((x0[:, 0, 0, 0] * 100).round().long().tolist())
                        or original(m, x0, c, g, teacher))
    _, _, stats = _run("graddiff", {"lr": 1e-4, "steps": 4, "batch_size": 10}, data=(forget, remain))
    labels = remain.groups[sorted(seen)]
    assert stats["remain_set_size"] == 20 and len(seen) == 20  # 10 per class × 2: the whole subset, nothing else
    assert torch.bincount(labels).tolist()[1:] == [10, 10]


@pytest.mark.parametrize("name", ["rgd", "rg", "graddiff"])
def test_truncation_settings_reach_the_forget_loss(name, monkeypatch):
    import methods.graddiff as gd
    from methods import losses

    module = gd if name == "graddiff" else rgd_module
    seen = []
    monkeypatch.setattr(module, "forget_loss", lambda *a: seen.append(a[4:]) or losses.forget_loss(*a))
    _run(name, {"lr": 1e-4, "steps": 1, "batch_size": 4, "truncation_threshold": 0.3})
    assert seen == [("elementwise", 0.3, "x0")]  # the class default: the reference's x₀-space clamp


# -- paired batches (concept/style tasks) -----------------------------------------------------------

def _pairs(n=12):
    forget = UnlearnData(x=torch.arange(n, dtype=torch.float32).view(n, 1), keys=[f"nude {i}" for i in range(n)])
    remain = UnlearnData(x=torch.arange(n, dtype=torch.float32).view(n, 1), keys=[f"safe {i}" for i in range(n)],
                         paired_with_forget=True)
    return forget, remain


def test_paired_batches_keep_every_forget_example_with_its_twin():
    forget, remain = _pairs()
    stream = paired_batches(forget, remain, 4, torch.Generator().manual_seed(0))
    firsts = []
    for _ in range(9):  # three epochs
        f, r = next(stream)
        assert [k.split()[1] for k in f.keys] == [k.split()[1] for k in r.keys]
        firsts.append(f.keys[0])
    assert len(set(firsts)) > 1  # shuffled, not file order


def test_unpaired_sets_are_shuffled_independently_and_a_subset_is_not_paired():
    forget, remain = _pairs()
    assert not remain.subset([0, 2]).paired_with_forget
    remain.paired_with_forget = False
    stream = paired_batches(forget, remain, 4, torch.Generator().manual_seed(0))
    mismatched = sum(f.keys[0].split()[1] != r.keys[0].split()[1] for f, r in (next(stream) for _ in range(6)))
    assert mismatched > 0
    remain.paired_with_forget = True
    short = UnlearnData(x=remain.x[:3], keys=remain.keys[:3], paired_with_forget=True)
    with pytest.raises(ValueError, match="paired"):
        next(paired_batches(forget, short, 4, torch.Generator()))


@pytest.mark.parametrize("name", ["rgd", "graddiff"])
def test_concept_methods_meet_each_forget_prompt_with_its_twin(name, monkeypatch):
    """On a paired concept task the remain batch of every step is the forget batch's twin."""
    import methods.graddiff as gd

    forget, remain = _pairs(16)
    module = gd if name == "graddiff" else rgd_module
    lin = torch.nn.Linear(1, 1)
    conds = []
    monkeypatch.setattr(module, "remain_loss", lambda m, x0, c, g, teacher=None: conds.append(list(c)) or lin.weight.sum() * 0)
    monkeypatch.setattr(module, "forget_loss", lambda m, x0, c, g, *a: conds.append(list(c)) or lin.weight.sum() * 0)

    class Keys:  # the loop only needs condition() and a denoiser to optimise; the losses are spied
        denoiser = lin

        @staticmethod
        def condition(keys):
            return keys

    cls = METHODS.get(name)
    hp = cls.default_hparams("concept", steps=6, batch_size=4)
    ctx = class_ctx()
    ctx.task_kind = "concept"
    cls(hp).unlearn(Keys(), forget, remain, Budget(), ctx)
    forget_conds = [c for c in conds if c[0].startswith("nude")]
    remain_conds = [c for c in conds if c[0].startswith("safe")]
    assert len(forget_conds) == len(remain_conds) == 6
    for f, r in zip(forget_conds, remain_conds):
        assert [k.split()[1] for k in f] == [k.split()[1] for k in r]


# -- remain subsets stay what the task built ----------------------------------------------------------

def test_balanced_subset_of_the_tiny_task():
    _, remain = class_data()
    sub = remain_subset(remain, "balanced", torch.Generator().manual_seed(0))
    assert torch.bincount(sub.groups).tolist() == [0, 6, 6]


# -- truncations: property tests against the reference formulas ---------------------------------

def test_x0_space_truncation_is_the_reference_clamp_on_the_x0_error():
    """The CIFAR reference clamps the x₀-space error: min((x̂₀−x₀)², m). In ε units our elements stop
    contributing gradient exactly where (x̂₀−x₀)² > m, and contribute (ε̂−ε)² = (x̂₀−x₀)²/s_t elsewhere."""
    from methods.losses import truncated_forget_loss, x0_error_scale

    model = tiny_class_model()
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(6, 1, 8, 8, generator=g) * 2 - 1
    eps = torch.randn(x0.shape, generator=g)
    t = torch.tensor([1, 10, 30, 50, 80, 99])
    x_t = model.add_noise(x0, eps, t)
    eps_hat = (eps + 0.3 * torch.randn(x0.shape, generator=g)).requires_grad_()
    ac = model.noise_scheduler.alphas_cumprod[t].view(-1, 1, 1, 1)
    x0_hat = (x_t - (1 - ac).sqrt() * eps_hat) / ac.sqrt()  # the denoiser's x₀ estimate
    x0_err = (x0_hat - x0).pow(2)
    m = 0.05
    loss = truncated_forget_loss((eps_hat - eps).pow(2), "elementwise", m, x0_error_scale(model, t))
    loss.backward()
    active = x0_err.detach() < m
    assert 0 < int(active.sum()) < active.numel()  # both regimes present
    assert torch.equal(eps_hat.grad != 0, active)
    s = x0_error_scale(model, t).view(-1, 1, 1, 1)
    assert torch.allclose(s * (eps_hat - eps).detach().pow(2), x0_err.detach(), rtol=1e-4, atol=1e-6)
    # ε-space option: the bound applies to (ε̂−ε)² itself
    eps_hat.grad = None
    truncated_forget_loss((eps_hat - eps).pow(2), "elementwise", m).backward()
    assert torch.equal(eps_hat.grad != 0, (eps_hat - eps).detach().pow(2) < m)


@pytest.mark.parametrize("space", ["x0", "eps"])
def test_forget_loss_truncates_in_the_space_it_is_given(space):
    """forget_loss = mean(min((ε̂−ε)², m/s_t)) with the draws of noised_batch, s_t = 1 in ε-space."""
    from methods.losses import forget_loss, x0_error_scale

    model = tiny_class_model()
    forget, _ = class_data()
    cond = model.condition(forget.keys)
    got = forget_loss(model, forget.x, cond, torch.Generator().manual_seed(3), "elementwise", 0.05, space)
    x_t, t, noise = noised_batch(model, forget.x, torch.Generator().manual_seed(3))
    sq = (model.predict_noise(x_t, t, cond) - noise).pow(2)
    s = x0_error_scale(model, t).view(-1, 1, 1, 1) if space == "x0" else torch.ones(1)
    assert float(got) == pytest.approx(float(torch.minimum(sq, 0.05 / s).mean()), rel=1e-5)
    assert float(got) < float(sq.mean())  # the bound binds somewhere


def test_normalize_truncation_has_the_reference_value_and_gradient():
    """SD reference: L / ‖L‖ (non-detached) once L > m — value 1, gradient 0; under m the plain mean."""
    from methods.losses import truncated_forget_loss

    for values, m in (([2.0, 4.0], 1.1), ([0.5, 1.0], 1.1), ([3.0, 0.1, 0.2], 0.5)):
        ours = torch.tensor(values, requires_grad=True)
        ref = torch.tensor(values, requires_grad=True)
        out = truncated_forget_loss(ours, "normalize", m)
        out.backward()
        loss = ref.mean()
        ref_out = loss / torch.norm(loss) if loss.item() > m else loss
        ref_out.backward()
        assert float(out) == pytest.approx(float(ref_out))
        assert torch.allclose(ours.grad, ref.grad, atol=1e-7)
        if loss.item() > m:
            assert torch.count_nonzero(ours.grad) == 0


# -- ESD -----------------------------------------------------------------------------------------------

@torch.no_grad()
def _esd_distance(model, frozen, cond, eta=1.0, seed=5):
    """‖ε_θ(z,t,c) − (e_0 − η(e_p − e_0))‖² at fixed (z, t), e_0/e_p from the frozen original."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(16, *model.sample_shape, generator=g)
    t = torch.randint(0, model.num_train_timesteps, (16,), generator=g)
    c = cond.expand(16) if cond.ndim == 1 else cond.expand(16, *cond.shape[1:])
    e_0 = frozen.predict_noise(z, t, frozen.null_condition(16))
    e_p = frozen.predict_noise(z, t, c)
    model.denoiser.eval()
    e_n = model.predict_noise(z, t, c)
    model.denoiser.train()
    return float((e_n - (e_0 - eta * (e_p - e_0))).pow(2).mean())


def test_esd_moves_the_conditional_prediction_toward_the_negatively_guided_target():
    """Fails if e_0/e_p are swapped (target 2e_p − e_0: the distance grows) or η's sign flips (target e_p:
    no movement, since ε_θ starts at e_p)."""
    model = tiny_class_model()
    frozen = model.frozen_copy()
    forget, _ = class_data()
    cond = model.condition([0])
    before = _esd_distance(model, frozen, cond)
    cls = METHODS.get("esd-u")
    hp = make_hparams(cls, {"lr": 3e-3, "steps": 20, "ddim_steps": 5, "batch_size": 4})
    cls(hp).unlearn(model, forget, forget, Budget(), class_ctx())
    after = _esd_distance(model, frozen, cond)
    assert after < 0.6 * before, (before, after)


def test_esd_samples_its_partial_trajectories_in_eval_mode(monkeypatch):
    """The reference draws z with dropout off; the CIFAR-size UNet has dropout 0.1."""
    model = tiny_class_model(dropout=0.5)
    forget, _ = class_data()
    modes = []
    original = model.sample_latents
    monkeypatch.setattr(model, "sample_latents", lambda *a, **k: modes.append(model.denoiser.training) or original(*a, **k))
    cls = METHODS.get("esd-u")
    cls(make_hparams(cls, {"steps": 3, "ddim_steps": 4})).unlearn(model, forget, forget, Budget(), class_ctx())
    assert modes == [False, False, False] and model.denoiser.training


# -- SalUn ---------------------------------------------------------------------------------------------

@torch.no_grad()
def _relabel_gap(model, target=0, relabelled=1, seed=9):
    """‖ε_θ(x_t,t,c_f) − ε_θ(x_t,t,c′)‖² at fixed (x_t, t), both from the current model, dropout off."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(16, *model.sample_shape, generator=g)
    t = torch.randint(0, model.num_train_timesteps, (16,), generator=g)
    model.denoiser.eval()
    gap = (model.predict_noise(x, t, model.condition([target] * 16)) - model.predict_noise(x, t, model.condition([relabelled] * 16)))
    model.denoiser.train()
    return float(gap.pow(2).mean())


def test_salun_pulls_the_forget_prediction_onto_the_relabelled_class():
    """With α = 0 only the forget term acts: ε_θ(·, c_f) → ε_θ(·, c′ = c+1). Fails if the target is the
    forget class itself (zero loss, no pull) or the relabelled prediction is trained instead."""
    model = tiny_class_model()
    forget, remain = class_data()
    before = _relabel_gap(model)
    cls = METHODS.get("salun")
    hp = make_hparams(cls, {"lr": 3e-3, "steps": 15, "batch_size": 8, "alpha": 0.0, "cond_drop_prob": 0.0, "sparsity": 0.5})
    cls(hp).unlearn(model, forget, remain, Budget(), class_ctx())
    assert _relabel_gap(model) < 0.5 * before


def test_salun_mask_is_computed_without_dropout():
    """The mask pass runs in eval mode: with dropout in the model, two passes with the same generator
    give the same mask (in train mode dropout draws from the global RNG and the masks differ)."""
    cls = METHODS.get("salun")
    forget, _ = class_data()
    masks = []
    for torch_seed in (1, 2):
        model = tiny_class_model(dropout=0.5)
        model.denoiser.train()
        torch.manual_seed(torch_seed)
        m, _ = cls(make_hparams(cls, {"batch_size": 6})).compute_masks(model, forget, class_ctx())
        masks.append(m)
        assert model.denoiser.training  # the mode is restored
    assert all(torch.equal(masks[0][n], masks[1][n]) for n in masks[0])


# -- precision -------------------------------------------------------------------------------------------

def test_fp16_checkpoints_train_on_fp32_master_weights():
    from bench.core.errors import ConfigError
    from methods.training import adam

    model = tiny_class_model()
    model.denoiser.half()
    trainable = model.trainable_copy()
    assert {p.dtype for p in trainable.denoiser.parameters()} == {torch.float32}
    with pytest.raises(ConfigError, match="fp32 master weights"):
        adam(list(model.denoiser.parameters()), 1e-4)
