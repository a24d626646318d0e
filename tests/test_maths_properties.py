"""Property tests of the pure maths in methods/ against hand computations or the reference
formula, written to kill the mutants mutmut found alive (pyproject [tool.mutmut])."""
import math
from types import SimpleNamespace

import pytest
import torch
from diffusers import DDPMScheduler
from torch import nn

from methods.gradients import _EPS, flatten_grads, projection_coefficients, restricted_update_lists
from methods.losses import antithetic_timesteps, drop_condition, forget_loss, truncated_forget_loss, x0_error_scale
from methods.saliency import apply_threshold, kept_count, saliency_masks, saliency_threshold
from tests.tiny_models import class_data, tiny_class_model


# -- RGD's projection ----------------------------------------------------------------------------------
def test_no_projection_without_conflict_even_for_a_small_positive_inner_product():
    assert projection_coefficients(0.5, 2.0, 3.0) == (0.0, 0.0)
    assert projection_coefficients(0.0, 2.0, 3.0) == (0.0, 0.0)


def test_projection_coefficients_by_hand():
    assert projection_coefficients(-1.0, 4.0, 2.0) == (-0.5, -0.25)


@pytest.mark.parametrize("zero", [0.0, _EPS])
def test_a_zero_norm_skips_its_projection_and_never_divides(zero):
    assert projection_coefficients(-1.0, 2.0, zero) == (0.0, -0.5)  # nothing to project onto: a = 0
    assert projection_coefficients(-1.0, zero, 2.0) == (-0.5, 0.0)


def test_update_statistics_by_hand():
    g_f, g_r = [torch.tensor([3.0, 0.0])], [torch.tensor([-1.0, 1.0])]
    d, stats = restricted_update_lists(g_f, g_r, lam=2.0)
    assert stats.dot == -3.0 and stats.conflict
    assert stats.cosine == pytest.approx(-3.0 / math.sqrt(18.0))
    assert stats.norm_f == pytest.approx(3.0) and stats.norm_r == pytest.approx(math.sqrt(2.0))
    # a = −3/2, b = −1/3: d = (1 + 2/3)·g_f + (2 + 3/2)·g_r
    assert torch.allclose(d[0], (5 / 3) * g_f[0] + 3.5 * g_r[0])


def test_a_parameter_without_gradient_flattens_to_zeros():
    a, b = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(3))
    a.grad = torch.tensor([1.0, 2.0])
    assert torch.equal(flatten_grads([a, b]), torch.tensor([1.0, 2.0, 0.0, 0.0, 0.0]))


# -- forget-loss truncation ----------------------------------------------------------------------------
def test_normalize_truncation_starts_strictly_above_the_threshold():
    at = torch.tensor([0.5, 0.5], requires_grad=True)
    loss = truncated_forget_loss(at, "normalize", 0.5)  # L = m exactly: not truncated, gradient flows
    loss.backward()
    assert loss.item() == 0.5 and torch.all(at.grad != 0)
    above = torch.tensor([0.6, 0.6], requires_grad=True)
    loss = truncated_forget_loss(above, "normalize", 0.5)
    loss.backward()
    assert loss.item() == 1.0 and torch.all(above.grad == 0)


def test_unknown_truncations_are_named():
    with pytest.raises(ValueError, match="unknown forget_truncation 'clip'; use none\\|elementwise\\|normalize"):
        truncated_forget_loss(torch.ones(2), "clip", 0.1)
    with pytest.raises(ValueError, match="truncation_space must be x0\\|eps, not 'pixels'"):
        forget_loss(None, None, None, None, "elementwise", 0.1, space="pixels")


def test_forget_loss_bounds_the_x0_error_by_default():
    model = tiny_class_model()
    forget, _ = class_data()
    x0, cond = forget.x[:6], model.condition(forget.keys[:6])
    loss = lambda **kw: forget_loss(model, x0, cond, torch.Generator().manual_seed(1), "elementwise", 0.05, **kw)  # noqa: E731
    with torch.no_grad():
        assert loss().item() == loss(space="x0").item() != loss(space="eps").item()  # the reference's space


def test_x0_error_scale_is_computed_in_float64():
    sched = DDPMScheduler(num_train_timesteps=1000)
    t = torch.arange(1000)
    ac = sched.alphas_cumprod.double()[t]
    got = x0_error_scale(SimpleNamespace(noise_scheduler=sched), t)
    assert got.dtype == torch.float32 and torch.equal(got, ((1 - ac) / ac).float())


# -- SalUn's timesteps and condition dropout -----------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 7, 8, 64])
def test_antithetic_timesteps_are_the_reference_draw(n):
    T = 1000
    got = antithetic_timesteps(n, T, torch.Generator().manual_seed(3))
    t = torch.randint(0, T, (n // 2 + 1,), generator=torch.Generator().manual_seed(3))
    assert torch.equal(got, torch.cat([t, T - 1 - t])[:n])  # the DDIM/SA/SalUn code's pairs (t, T−1−t)
    assert len(got) == n


def test_condition_dropout_p0_is_the_identity_and_draws_nothing():
    g = torch.Generator().manual_seed(0)
    state = g.get_state()
    cond = torch.randn(4, 3, 2)
    assert drop_condition(cond, torch.zeros(3, 2), 0.0, g) is cond
    assert torch.equal(g.get_state(), state)


@pytest.mark.parametrize("shape", [(6,), (6, 3, 2)])
def test_condition_dropout_drops_whole_rows_as_drawn(shape):
    cond = torch.arange(math.prod(shape), dtype=torch.float64).reshape(shape) + 1
    null = torch.zeros(shape[1:], dtype=torch.float32)
    drop = torch.rand(shape[0], generator=torch.Generator().manual_seed(5)) < 0.5
    got = drop_condition(cond, null, 0.5, torch.Generator().manual_seed(5))
    assert 0 < int(drop.sum()) < shape[0]  # the seed drops some rows, keeps others
    for i in range(shape[0]):
        assert torch.equal(got[i], torch.zeros_like(cond[i]) if drop[i] else cond[i])
    assert got.dtype == cond.dtype


# -- SalUn's mask maths ----------------------------------------------------------------------------------
def test_kept_count_bounds():
    assert kept_count(10, 1.0) == 10 and kept_count(10, 0.0) == 0 and kept_count(10, 0.55) == 5
    for bad in (1.5, -0.1):
        with pytest.raises(ValueError, match=f"saliency fraction must lie in \\[0, 1\\], not {bad}"):
            kept_count(10, bad)


def test_threshold_needs_a_proper_cut():
    flat = torch.tensor([3.0, 1.0, 2.0])
    assert saliency_threshold(flat, 1) == 3.0 and saliency_threshold(flat, 2) == 2.0  # default: the top
    assert saliency_threshold(flat, 1, "bottom") == 1.0
    for k in (0, 3):
        with pytest.raises(ValueError, match=f"need 0 < k < 3, got k={k}"):
            saliency_threshold(flat, k)
    with pytest.raises(ValueError, match="select must be 'top' or 'bottom', not 'middle'"):
        saliency_threshold(flat, 1, "middle")


def test_apply_threshold_defaults_to_the_top():
    s = torch.tensor([0.0, 1.0, 2.0])
    assert apply_threshold(s, torch.tensor(1.0)).tolist() == [False, True, True]


def test_masks_name_a_bad_selection():
    with pytest.raises(ValueError, match="select must be 'top' or 'bottom', not 'middle'"):
        saliency_masks({"w": torch.ones(4)}, 0.5, "middle")


# -- mixed precision (bf16 activations and scores on GPUs): results keep the working dtype ----------------
def test_bf16_inputs_keep_their_dtype():
    sq = torch.rand(4, 3, dtype=torch.bfloat16)
    scale = torch.tensor([0.5, 1.0, 2.0, 4.0])  # x0_error_scale's float32
    assert truncated_forget_loss(sq, "elementwise", 0.3, scale).dtype == torch.bfloat16
    cond, null = torch.randn(6, 2, dtype=torch.bfloat16), torch.zeros(2)
    assert drop_condition(cond, null, 0.5, torch.Generator().manual_seed(0)).dtype == torch.bfloat16


def test_bf16_scores_are_ranked_in_float32():
    g = torch.Generator().manual_seed(0)
    scores = {"a": torch.rand(50, generator=g), "b": torch.rand(7, 3, generator=g)}
    ref, ref_stats = saliency_masks({k: v.bfloat16().float() for k, v in scores.items()}, 0.3)
    got, stats = saliency_masks({k: v.bfloat16() for k, v in scores.items()}, 0.3)
    assert stats == ref_stats and all(torch.equal(got[k], ref[k]) for k in ref)
