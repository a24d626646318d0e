"""GradDiff's sign and the forget-loss truncation options shared with RGD."""
import torch
from torch import nn

from bench.core.context import Budget, RunContext
from bench.core.data import UnlearnData
from methods.base import make_hparams
from methods.graddiff import GradDiff
from methods.losses import truncated_forget_loss


def test_elementwise_truncation_stops_gradient_past_the_threshold():
    sq = torch.tensor([0.05, 0.2, 0.5], requires_grad=True)
    loss = truncated_forget_loss(sq, "elementwise", 0.1)
    loss.backward()
    assert torch.isclose(loss, torch.tensor((0.05 + 0.1 + 0.1) / 3))
    assert torch.allclose(sq.grad, torch.tensor([1 / 3, 0.0, 0.0]))


def test_normalize_truncation_stops_ascent_past_the_threshold():
    sq = torch.tensor([2.0, 4.0], requires_grad=True)
    loss = truncated_forget_loss(sq, "normalize", 1.1)
    loss.backward()
    assert torch.isclose(loss, torch.tensor(1.0))
    assert torch.count_nonzero(sq.grad) == 0  # the reference's L/‖L‖: value 1, no gradient
    small = torch.tensor([0.5, 1.0], requires_grad=True)
    out = truncated_forget_loss(small, "normalize", 1.1)
    out.backward()
    assert torch.isclose(out, torch.tensor(0.75)) and torch.allclose(small.grad, torch.full((2,), 0.5))  # under m: plain mean


class _Linear:
    """A one-layer 'denoiser' with the adapter surface GradDiff touches."""

    kind = "class"

    def __init__(self):
        torch.manual_seed(0)
        self.denoiser = nn.Linear(4, 4)
        self.num_train_timesteps = 10

    def condition(self, keys):
        return torch.tensor(keys)

    def random_timesteps(self, n, generator=None):
        return torch.zeros(n, dtype=torch.long)

    def add_noise(self, x0, noise, t):
        return x0 + noise

    def predict_noise(self, x_t, t, cond):
        return self.denoiser(x_t)


def test_graddiff_ascends_the_forget_loss_and_descends_the_remain_loss():
    """With α = 0 the update is pure ascent on L_f; with the forget set empty of signal, descent on L_r."""
    model = _Linear()
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(1))
    forget = UnlearnData(x=x, keys=[0] * 16)
    remain = UnlearnData(x=x.clone(), keys=[1] * 16)

    def loss_on(data, seed=5):
        g = torch.Generator().manual_seed(seed)
        noise = torch.randn(data.x.shape, generator=g)
        with torch.no_grad():
            return float((model.predict_noise(data.x + noise, None, None) - noise).pow(2).mean())

    before = loss_on(forget)
    hp = make_hparams(GradDiff, {"lr": 1e-2, "steps": 20, "batch_size": 16, "alpha": 0.0, "forget_truncation": "none"})
    GradDiff(hp).unlearn(model, forget, remain, Budget(), RunContext(torch.device("cpu"), 0, "class"))
    assert loss_on(forget) > before  # −L_f is minimised: the forget loss goes up

    model = _Linear()
    before = loss_on(remain)
    hp = make_hparams(GradDiff, {"lr": 1e-2, "steps": 20, "batch_size": 16, "alpha": 1e6, "forget_truncation": "none"})
    GradDiff(hp).unlearn(model, forget, remain, Budget(), RunContext(torch.device("cpu"), 0, "class"))
    assert loss_on(remain) < before  # the α-weighted remain term dominates: L_r goes down
