import pytest
import torch
from torch import nn

from methods.gradients import flatten_grads, restricted_update, restricted_update_lists, unflatten_into_grads


def test_conflicting_gradients_never_oppose_update():
    gen = torch.Generator().manual_seed(0)
    for _ in range(500):
        g_f, g_r = torch.randn(7, generator=gen), torch.randn(7, generator=gen)
        if torch.dot(g_f, g_r) >= 0:
            continue
        d = restricted_update(g_f, g_r, lam=0.5)
        assert torch.dot(d, g_f) >= -1e-5 and torch.dot(d, g_r) >= -1e-5


def test_agreeing_gradients_sum():
    g_f, g_r = torch.tensor([1.0, 2.0]), torch.tensor([1.0, 0.0])
    assert torch.allclose(restricted_update(g_f, g_r, 2.0), g_f + 2.0 * g_r)


def test_hand_computed_2d():
    g_f, g_r = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    # dot=-1; delta_f = (1,0) + 0.5*(-1,1) = (0.5,0.5); delta_r = (-1,1) + (1,0) = (0,1)
    d = restricted_update(g_f, g_r, 1.0)
    assert torch.allclose(d, torch.tensor([0.5, 1.5]))


def test_global_flatten_roundtrip():
    net = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    net(torch.randn(4, 3)).sum().backward()
    params = list(net.parameters())
    vec = flatten_grads(params)
    assert vec.numel() == sum(p.numel() for p in params)
    unflatten_into_grads(vec * 2, params)
    assert torch.allclose(flatten_grads(params), vec * 2)
    n = vec.numel()
    with pytest.raises(ValueError, match=f"vector has {n + 1} entries, parameters {n}"):  # a vector of other parameters
        unflatten_into_grads(torch.zeros(n + 1), params)


def test_list_update_equals_flat_update():
    gen = torch.Generator().manual_seed(1)
    shapes = [(3, 4), (5,), (2, 2, 2)]
    for _ in range(50):
        gf = [torch.randn(s, generator=gen) for s in shapes]
        gr = [torch.randn(s, generator=gen) for s in shapes]
        d, stats = restricted_update_lists(gf, gr, lam=1.6)
        flat = restricted_update(torch.cat([g.reshape(-1) for g in gf]), torch.cat([g.reshape(-1) for g in gr]), 1.6)
        assert torch.allclose(torch.cat([x.reshape(-1) for x in d]), flat, atol=1e-5)
        assert stats.conflict == (stats.dot < 0)


def test_projection_is_global_not_per_layer():
    # per layer the gradients agree in layer 2 and conflict in layer 1; globally they conflict
    gf = [torch.tensor([1.0, 0.0]), torch.tensor([0.1])]
    gr = [torch.tensor([-1.0, 1.0]), torch.tensor([0.1])]
    d, stats = restricted_update_lists(gf, gr, lam=1.0)
    assert stats.conflict
    flat = torch.cat([x.reshape(-1) for x in d])
    g_f, g_r = torch.cat(gf), torch.cat(gr)
    assert torch.dot(flat, g_f) >= -1e-6 and torch.dot(flat, g_r) >= -1e-6
    # layer 2 is projected too (coefficients are global): d_2 != g_f2 + g_r2
    assert not torch.allclose(d[1], gf[1] + gr[1])


def test_zero_gradient_skips_projection():
    g_f, g_r = torch.zeros(3), torch.tensor([1.0, -2.0, 0.5])
    assert torch.allclose(restricted_update(g_f, g_r, 2.0), 2.0 * g_r)
