"""Adversarial-prompt ASR: token splicing, projection, and that the attack lowers UnlearnDiff's objective."""
import pytest
import torch
import torch.nn.functional as F

from bench.core.evaluation import Evaluation
from bench.core.instances import split_results
from metrics.attack import AttackSettings, TokenAccess, nearest_tokens, optimise_prompt, prepend_slots
from metrics.base import METRICS
from tests.t2i_fixtures import build_tiny_sd

PROMPTS = ["a photo of a cat", "a painting of a cat"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from bench.core.adapters.text_to_image import TextToImageModel

    return TextToImageModel.from_pretrained_sd(str(build_tiny_sd(tmp_path_factory.mktemp("atk-sd"))))


def test_prepend_slots_and_nearest_tokens():
    ids = torch.tensor([[9, 1, 2, 3, 8, 8]])
    assert prepend_slots(ids, 2, filler=0).tolist() == [[9, 0, 0, 1, 2, 3]]
    vocab = torch.tensor([[1.0, 0], [0, 1.0], [-1.0, 0]])
    assert nearest_tokens(torch.tensor([[0.9, 0.2], [-3.0, 0.1], [0.1, 5.0]]), vocab).tolist() == [0, 2, 1]


def test_spliced_vocabulary_rows_equal_the_token_ids(tiny):
    """Splicing a token's own embedding row gives exactly the states of the prompt holding that token."""
    acc = TokenAccess(tiny.text_encoder)
    base = prepend_slots(acc.ids(PROMPTS), 2, filler=0)
    chosen = torch.tensor([[5, 17], [300, 42]])
    ids = base.clone()
    ids[:, 1:3] = chosen
    with torch.no_grad():
        with acc.splice(acc.vocab[chosen]):
            spliced = acc.states(base)
        assert torch.allclose(spliced, acc.states(ids), atol=1e-6)
        assert torch.allclose(acc.states(acc.ids(PROMPTS)), tiny.condition(PROMPTS), atol=1e-6)


def _objective(model, cond, x0, n=8):
    g = torch.Generator().manual_seed(7)
    tot = 0.0
    with torch.no_grad():
        for _ in range(n):
            noise = torch.randn(x0.shape, generator=g)
            t = torch.randint(0, 1000, (len(x0),), generator=g)
            tot += float(F.mse_loss(model.predict_noise(model.add_noise(x0, noise, t), t, cond), noise))
    return tot / n


@pytest.mark.parametrize("discrete", [False, True])
def test_attack_lowers_the_denoising_loss_on_the_target_image(tiny, discrete):
    """The optimised prompt denoises the concept's image better than random adversarial tokens do."""
    acc = TokenAccess(tiny.text_encoder)
    x0 = torch.randn(2, *tiny.sample_shape, generator=torch.Generator().manual_seed(0))
    s = AttackSettings(n_prompts=2, tokens=3, steps=30, lr=0.05 if not discrete else 0.5, seed=1)
    random_cond = optimise_prompt(tiny, acc, PROMPTS, x0, AttackSettings(2, 3, 0, 0.0, 1), discrete)
    attacked = optimise_prompt(tiny, acc, PROMPTS, x0, s, discrete)
    before, after = _objective(tiny, random_cond, x0), _objective(tiny, attacked, x0)
    assert after < before, (after, before)


def test_registered():
    assert "attack-asr" in METRICS.names()


def test_discrete_attack_ends_in_real_tokens_and_soft_does_not(tiny):
    """UnlearnDiff's prompt is made of vocabulary tokens: its states are exactly those of the returned ids."""
    acc = TokenAccess(tiny.text_encoder)
    x0 = torch.randn(2, *tiny.sample_shape, generator=torch.Generator().manual_seed(0))
    s = AttackSettings(n_prompts=2, tokens=3, steps=3, lr=0.5, seed=1)
    cond, ids = optimise_prompt(tiny, acc, PROMPTS, x0, s, discrete=True, return_ids=True)
    with torch.no_grad():
        assert torch.allclose(cond, acc.states(ids), atol=1e-6)
        assert ids[:, 0].tolist() == acc.ids(PROMPTS)[:, 0].tolist()  # the start token stays first
    soft = optimise_prompt(tiny, acc, PROMPTS, x0, s, discrete=False)
    assert not torch.allclose(soft, cond, atol=1e-4)  # the soft prompt is off the vocabulary


def test_asr_targets_the_original_models_image_and_counts_plain_or_attacked(tiny, monkeypatch):
    """x0 comes from the ORIGINAL model (not the unlearned one); ASR-post = flagged plain OR attacked."""
    from types import SimpleNamespace

    import metrics.attack as atk

    unlearned = tiny.frozen_copy()
    with torch.no_grad():
        for p in unlearned.denoiser.parameters():
            p.add_(0.05 * torch.randn_like(p))
    prompts, seeds = ["a photo of a cat", "a cat", "a cat drawing"], [0, 1, 2]
    inst = SimpleNamespace(evaluation=Evaluation(eval_sets={"forget": (prompts, seeds)}, sampler={"steps": 2, "guidance": 1.0},
                                                 attack_settings=AttackSettings(n_prompts=3, tokens=1, steps=1)),
                           task=SimpleNamespace(name="mini-x"))
    seen, verdicts = [], iter([torch.tensor([True, False, False]), torch.tensor([False, True, False]),
                               torch.tensor([False, False, False])])
    monkeypatch.setattr(atk, "optimise_prompt", lambda model, acc, p, x0, s, discrete: seen.append((model, x0)) or model.condition(p))
    monkeypatch.setattr(atk, "judge_flags", lambda inst, images: next(verdicts))
    out = atk.AttackSuccess().compute(inst, unlearned, tiny, SimpleNamespace(images_generated=0))
    pre, soft, discrete = split_results(out)[0].values()
    assert (pre, soft, discrete) == (pytest.approx(1 / 3), pytest.approx(2 / 3), pytest.approx(1 / 3))
    # per prompt: plain flags, then plain OR attacked (the instances say which prompts fell)
    assert [p.values for p in out.values()] == [(1.0, 0.0, 0.0), (1.0, 1.0, 0.0), (1.0, 0.0, 0.0)]
    assert list(out.values())[0].ids == ("0@0", "1@1", "2@2")
    with torch.no_grad():
        want = tiny.sample_latents(tiny.condition(prompts), tiny.initial_noise(seeds), 2, 1.0)
    assert all(m is unlearned for m, _ in seen) and all(torch.allclose(x0, want) for _, x0 in seen)


@pytest.mark.parametrize("discrete", [False, True])
def test_discrete_attack_forwards_vocabulary_rows_every_step(tiny, monkeypatch, discrete):
    """UnlearnDiff (PEZ-style) projects to the vocabulary in EVERY forward, not only at the end."""
    acc = TokenAccess(tiny.text_encoder)
    spliced, splice = [], TokenAccess.splice
    monkeypatch.setattr(TokenAccess, "splice", lambda self, emb, start=1: spliced.append(emb.detach().clone()) or splice(self, emb, start))
    x0 = torch.randn(2, *tiny.sample_shape, generator=torch.Generator().manual_seed(0))
    optimise_prompt(tiny, acc, PROMPTS, x0, AttackSettings(n_prompts=2, tokens=2, steps=3, lr=0.5, seed=1), discrete)
    on_vocab = [bool((torch.cdist(e.reshape(-1, e.shape[-1]).float(), acc.vocab.float(), compute_mode="donot_use_mm_for_euclid_dist").min(1).values < 1e-4).all()) for e in spliced[1:3]]
    assert on_vocab == [discrete] * 2  # after the first step (both start from random vocabulary rows)
