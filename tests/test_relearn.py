"""Relearning (metrics/relearn.py): the maths of the recovered share, and its behaviour on the shipped
mini-digits model: Original has nothing to recover, a model that only hides the class behind its label
gets it back within the budget, and the unlearned model itself is never touched."""
import pytest
import torch

from bench.core.context import RunContext
from metrics.relearn import Relearn, RelearnSettings, half_steps, recovered
from tasks.base import TASKS
from tests.helpers import FAST_DIGITS


def test_recovered_share_by_hand():
    assert recovered(0.9, 0.5, 0.1) == pytest.approx(0.5)  # (0.9 − 0.5) / (0.9 − 0.1)
    assert recovered(0.9, 0.0, 0.1) == 1.0 and recovered(0.9, 0.95, 0.1) == 0.0  # clipped
    assert recovered(0.1, 0.0, 0.1) == 0.0 and recovered(0.05, 0.0, 0.1) == 0.0  # nothing forgotten: nothing to recover
    assert half_steps([(5, 0.1), (10, 0.49), (20, 0.5), (40, 0.9)], 40) == 20
    assert half_steps([(5, 0.1), (40, 0.3)], 40) == 80  # not within the budget: 2·s


def test_settings_are_checked():
    with pytest.raises(ValueError, match="checkpoints"):
        RelearnSettings(steps=40, checkpoints=(10, 20))
    with pytest.raises(ValueError, match="examples and steps"):
        RelearnSettings(examples=0)


SETTINGS = RelearnSettings(examples=8, steps=20, lr=1e-3, checkpoints=(5, 20))


@pytest.fixture(scope="module")
def digits():
    task = TASKS.get("mini-digits-class").make({**FAST_DIGITS, "forget_samples": 20, "relearn": True})
    assert "relearn" in task.metrics
    inst = task.build("3", RunContext(device="cpu", seed=0, task_kind="class"))
    inst.evaluation.relearn_settings = SETTINGS
    return inst


def _relearn(inst, model):
    inst._samples.clear()
    return Relearn().compute(inst, model, inst.model, RunContext(device="cpu", seed=0, task_kind="class"))


def _col(out, prefix):
    return next(v for k, v in out.items() if k.startswith(prefix))


def test_original_has_nothing_to_recover_and_the_model_is_left_alone(digits):
    model = digits.model.fresh_copy()
    before = {n: p.detach().clone() for n, p in model.denoiser.named_parameters()}
    out = _relearn(digits, model)
    assert set(out) == set(Relearn().columns(digits))
    assert _col(out, "relearn-recovered") == 0.0 and _col(out, "relearn-half-steps") == 0.0
    assert all(torch.equal(p, before[n]) for n, p in model.denoiser.named_parameters())  # evaluation-only copy


def test_a_model_that_only_hides_the_class_behind_its_label_relearns_it(digits):
    """Swap the target's class embedding for another digit's: UA ≈ 1 without any weight of the network
    forgetting how to draw the digit. A few steps on 8 real examples of it bring it back."""
    hidden = digits.model.fresh_copy()
    emb = hidden.denoiser.class_embedding.weight
    with torch.no_grad():
        emb[3] = emb[5]
    out = _relearn(digits, hidden)
    assert _col(out, "relearn-recovered") >= 0.5, out
    assert _col(out, "relearn-half-steps") <= SETTINGS.steps, out
