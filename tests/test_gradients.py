import torch
from torch import nn

from methods.gradients import flatten_grads, restricted_update, unflatten_into_grads


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
