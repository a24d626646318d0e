"""`remain_loss: distill` (GradDiff, RGD, RG, SalUn): the remain term matches the frozen Original's noise
prediction on the same x_t, t and condition, instead of the data noise (leaderboard integrity, issue 20)."""
from dataclasses import dataclass, field

import pytest
import torch

from bench.core.context import Budget, RunContext
from bench.core.denoising import simple_loss
from methods.base import METHODS, make_hparams
from methods.losses import remain_loss, remain_teacher
from tests.tiny_models import NUM_CLASSES, class_data, tiny_class_model


@dataclass
class Recording(RunContext):
    """A run context that keeps each step's remain-term value."""

    remain: list = field(default_factory=list)

    def step(self, loss, **parts):
        self.remain.append(float(parts["remain"]))
        super().step(loss, **parts)


def ctx():
    return Recording(device=torch.device("cpu"), seed=0, task_kind="class", num_classes=NUM_CLASSES)


def test_simple_is_l_simple_with_the_same_draws():
    model = tiny_class_model()
    _, remain = class_data()
    cond = model.condition(remain.keys)
    got = remain_loss(model, remain.x, cond, torch.Generator().manual_seed(3))
    assert float(got) == pytest.approx(float(simple_loss(model, remain.x, cond, torch.Generator().manual_seed(3))), abs=0)
    with pytest.raises(ValueError, match="remain_loss must be simple|distill"):
        remain_teacher(model, "kd")


def test_distill_target_is_the_teachers_prediction_on_the_same_noised_batch():
    student, teacher = tiny_class_model(seed=0), tiny_class_model(seed=1).frozen_copy()
    _, remain = class_data()
    cond = student.condition(remain.keys)
    got = remain_loss(student, remain.x, cond, torch.Generator().manual_seed(4), teacher)
    g = torch.Generator().manual_seed(4)  # by hand: the same noise and timesteps for both networks
    noise = torch.randn(remain.x.shape, generator=g)
    t = student.random_timesteps(len(remain), g)
    x_t = student.add_noise(remain.x, noise, t)
    with torch.no_grad():
        want = (student.predict_noise(x_t, t, cond) - teacher.predict_noise(x_t, t, cond)).pow(2).mean()
    assert float(got) == pytest.approx(float(want), rel=1e-6)
    assert float(got) != pytest.approx(float(simple_loss(student, remain.x, cond, torch.Generator().manual_seed(4))), rel=1e-3)


HP = {
    "graddiff": {"alpha": 1.0, "forget_truncation": "none"},
    "rgd": {"lam": 1.0, "forget_truncation": "none"},
    "rg": {"lam": 1.0, "forget_truncation": "none"},
    "salun": {"alpha": 1.0, "sparsity": 0.5},
}


@pytest.mark.parametrize("method", sorted(HP))
def test_distill_starts_at_zero_and_then_tracks_the_frozen_original(method):
    """Step 1: the model is Original, so the distill term is exactly 0 (it is not the data noise, whose
    L_simple is far from 0); later steps: > 0 (the target is not the trained model's own prediction,
    which would make the term 0 forever and the remain side of the update vanish)."""
    forget, remain = class_data()
    cls = METHODS.get(method)
    runs = {}
    for kind in ("simple", "distill"):
        hp = make_hparams(cls, {"lr": 1e-2, "steps": 5, "batch_size": 6, "remain_loss": kind, **HP[method]})
        c = ctx()
        cls(hp).unlearn(tiny_class_model(), forget, remain, Budget(), c)
        runs[kind] = c.remain
    assert runs["distill"][0] < 1e-9, runs
    assert max(runs["distill"][1:]) > 1e-6, runs
    assert runs["simple"][0] > 1e-2, runs
    assert make_hparams(cls, {}).remain_loss == "simple"  # the papers' remain term stays the default


def test_distill_teacher_is_frozen_before_any_update():
    model = tiny_class_model()
    teacher = remain_teacher(model, "distill")
    before = [p.clone() for p in teacher.denoiser.parameters()]
    with torch.no_grad():
        for p in model.denoiser.parameters():
            p.add_(1.0)
    assert all(torch.equal(a, b) for a, b in zip(before, teacher.denoiser.parameters()))
    assert not any(p.requires_grad for p in teacher.denoiser.parameters())
