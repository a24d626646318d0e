"""RGD / RG / Retrain: remain sampling, the restricted step on a real network, the method loops."""
import dataclasses

import pytest
import torch

from bench.core.context import Budget, RunContext
from bench.core.errors import ConfigError
from methods.base import METHODS, make_hparams
from methods.gradients import grads_of, restricted_update_lists
from methods.remain_sampling import class_subset_indices
from tasks.base import TASKS


def test_balanced_takes_equal_counts_from_every_remaining_class():
    labels = torch.tensor([c for c in (0, 1, 2, 4) for _ in range(20)])
    idx = class_subset_indices(labels, 5, "balanced", torch.Generator().manual_seed(0))
    assert torch.bincount(labels[idx], minlength=5).tolist() == [5, 5, 5, 0, 5]
    assert len(set(idx.tolist())) == len(idx)


def test_narrow_draws_the_same_total_from_the_two_closest_classes():
    labels = torch.tensor([c for c in (0, 1, 2, 4) for _ in range(20)])
    idx = class_subset_indices(labels, 5, "narrow", torch.Generator().manual_seed(0), neighbours=[4, 2, 0, 1])
    counts = torch.bincount(labels[idx], minlength=5).tolist()
    assert len(idx) == 20 and counts == [0, 0, 10, 0, 10]


def test_uniform_same_total_and_narrow_needs_neighbours():
    labels = torch.tensor([c for c in range(3) for _ in range(10)])
    assert len(class_subset_indices(labels, 4, "uniform", torch.Generator().manual_seed(0))) == 12
    with pytest.raises(ConfigError, match="neighbours"):
        class_subset_indices(labels, 4, "narrow", torch.Generator())
    with pytest.raises(ConfigError, match="only 10"):
        class_subset_indices(labels, 11, "balanced", torch.Generator())


@pytest.fixture(scope="module")
def digits():
    ctx = RunContext(device=torch.device("cpu"), seed=0, task_kind="class")
    return TASKS.get("mini-digits-class").make({}).build("3", ctx)


def _losses(model, f, r, seed=0):
    """L_f and L_r with fixed noise and timesteps (so a step's effect can be compared)."""
    out = []
    for i, d in enumerate((f, r)):
        g = torch.Generator().manual_seed(seed + i)
        noise = torch.randn(d.x.shape, generator=g)
        t = torch.randint(0, 1000, (len(d),), generator=g)
        pred = model.predict_noise(model.add_noise(d.x, noise, t), t, model.condition(d.keys))
        out.append((pred - noise).pow(2).mean())
    return out


def test_restricted_step_improves_both_objectives_on_a_real_unet(digits):
    """When g_f and g_r conflict, a small step along d raises L_f and does not raise L_r."""
    model = digits.model.trainable_copy()
    model.denoiser.eval()  # no dropout: the same function before and after the step
    params = list(model.denoiser.parameters())
    checked = 0
    for seed in range(12):
        f = digits.forget.subset(range(seed, seed + 16))
        r = digits.remain.subset(range(seed, 1200, 40))
        lf, lr_ = _losses(model, f, r, seed)
        model.denoiser.zero_grad()
        (-lf).backward()
        g_f = grads_of(params)
        model.denoiser.zero_grad()
        lr_.backward()
        g_r = grads_of(params)
        d, stats = restricted_update_lists(g_f, g_r, lam=5.0)
        if not stats.conflict:
            continue
        checked += 1
        saved = [p.detach().clone() for p in params]
        with torch.no_grad():
            for p, g in zip(params, d):
                p -= 1e-4 * g / max(stats.norm_f, stats.norm_r)
            lf2, lr2 = _losses(model, f, r, seed)
            for p, s in zip(params, saved):
                p.copy_(s)
        assert lf2 >= lf  # forget loss went up (unlearning) ...
        assert lr2 <= lr_ + 1e-7  # ... and the remain loss did not get worse
    assert checked >= 2, "expected conflicting gradient pairs among the seeds"


@pytest.mark.parametrize("name", ["rgd", "rg"])
def test_method_runs_and_reports(digits, name):
    model = digits.model.trainable_copy()
    before = [p.detach().clone() for p in model.denoiser.parameters()]
    cls = METHODS.get(name)
    ctx = RunContext(device=torch.device("cpu"), seed=0, task_kind="class")
    stats = cls(make_hparams(cls, {"lr": 1e-3, "remain_chunk": 100})).unlearn(model, digits.forget, digits.remain, Budget(max_steps=2), ctx)
    assert ctx.steps_done == 2
    assert stats["remain_set_size"] == 270 and 0 <= stats["conflict_fraction"] <= 1
    assert any(not torch.equal(a, b) for a, b in zip(before, model.denoiser.parameters()))


def test_defaults_per_kind_and_rg_is_rgd_with_a_minibatch_remain_gradient():
    rgd, rg = METHODS.get("rgd"), METHODS.get("rg")
    c = rgd.default_hparams("class")
    assert (c.lr, c.batch_size, c.steps, c.lam, c.forget_truncation, c.truncation_threshold) == (1e-5, 64, 782, 5.0, "elementwise", 0.1)
    assert (c.remain_sampling, c.remain_gradient, c.truncation_space) == ("balanced", "subset", "x0")
    s = rgd.default_hparams("concept")
    assert (s.batch_size, s.steps, s.lam, s.forget_truncation, s.truncation_threshold) == (8, 100, 1.6, "normalize", 1.1)
    g = rg.default_hparams("class")
    assert (g.remain_sampling, g.remain_gradient) == ("balanced", "batch")
    # everything but how the remain gradient is taken is shared, so RGD − RG isolates the whole-subset gradient
    diff = {f.name for f in dataclasses.fields(c) if getattr(c, f.name) != getattr(g, f.name)}
    assert diff == {"remain_gradient"}
    assert rg.task_kinds == ("class",)  # on concept/style tasks RGD's reference update already is RG's
    with pytest.raises(ConfigError):
        make_hparams(rgd, {"remain_sampling": "wide"})


def test_retrain_reruns_the_pretrain_recipe_without_the_forget_class(digits):
    from bench.core.class_training import train_class_conditional

    recipe = digits.remain.meta["pretrain_recipe"]
    assert 3 not in set(digits.remain.groups.tolist())
    model = digits.model.trainable_copy()
    cls = METHODS.get("retrain")
    ctx = RunContext(device=torch.device("cpu"), seed=0, task_kind="class")
    stats = cls(make_hparams(cls, {"steps": 3})).unlearn(model, digits.forget, digits.remain, Budget(), ctx)
    assert ctx.steps_done == 3 and stats["recipe_steps"] == 3
    direct = train_class_conditional(dataclasses.replace(recipe, steps=3), digits.remain.x, digits.remain.groups, model.class_names)
    for a, b in zip(model.denoiser.state_dict().values(), direct.denoiser.state_dict().values()):
        assert torch.equal(a, b)
    assert "class" in cls.task_kinds and "concept" not in cls.task_kinds


def test_concept_tasks_narrow_is_the_tasks_slice_balanced_the_whole_diverse_set():
    from bench.core.data import UnlearnData
    from methods.remain_sampling import remain_subset

    prompts = [f"a {c} shape" for c in ("red", "green", "red", "blue")]
    remain = UnlearnData(x=torch.zeros(4, 1), keys=prompts, groups=torch.arange(4), meta={"narrow_indices": [0, 2]},
                         paired_with_forget=True)
    g = torch.Generator().manual_seed(0)
    whole = remain_subset(remain, "balanced", g)
    assert whole.keys == prompts and whole.paired_with_forget  # the diverse D_r, still paired with D_f
    narrow = remain_subset(remain, "narrow", g)
    assert narrow.keys == ["a red shape", "a red shape"] and not narrow.paired_with_forget
    assert METHODS.get("rgd").default_hparams("style").remain_sampling == "balanced"
    with pytest.raises(ConfigError, match="narrow_indices"):
        remain_subset(UnlearnData(x=torch.zeros(2, 1), keys=["a", "b"]), "narrow", g)
