"""ESD-u / ESD-x: target formula, timestep schedule, parameter subsets, untouched weights bit-identical."""
import pytest
import torch
from diffusers import DDIMScheduler

from bench.core.adapters.class_conditional import ClassConditionalModel
from bench.core.context import Budget, RunContext
from bench.core.data import UnlearnData
from bench.core.errors import ConfigError
from methods.base import METHODS
from methods.esd import ESDU, ESDX, esd_prompts, esd_schedule
from methods.losses import esd_target
from methods.parameter_subsets import class_fallback_names, esd_subset, esd_u_names, esd_x_names
from tests.helpers import FAST_DIGITS
from tests.t2i_fixtures import build_tiny_sd

ATTN2 = [f"{blk}.transformer_blocks.0.attn2.{p}"
         for blk in ("down_blocks.0.attentions.0", "up_blocks.1.attentions.0", "up_blocks.1.attentions.1", "mid_block.attentions.0")
         for p in ("to_q.weight", "to_k.weight", "to_v.weight", "to_out.0.weight", "to_out.0.bias")]
TIME_AND_OUTPUT = ["time_embedding.linear_1.weight", "time_embedding.linear_1.bias", "time_embedding.linear_2.weight",
                   "time_embedding.linear_2.bias", "conv_norm_out.weight", "conv_norm_out.bias", "conv_out.weight", "conv_out.bias"]


@pytest.fixture(scope="module")
def tiny_sd(tmp_path_factory):
    from bench.core.adapters.text_to_image import TextToImageModel

    return TextToImageModel.from_pretrained_sd(str(build_tiny_sd(tmp_path_factory.mktemp("esd-sd"))))


def test_target_formula():
    gen = torch.Generator().manual_seed(0)
    e_0, e_p = torch.randn(2, 4, 3, 3, generator=gen), torch.randn(2, 4, 3, 3, generator=gen)
    assert torch.allclose(esd_target(e_0, e_p, 1.0), 2 * e_0 - e_p)
    assert torch.allclose(esd_target(e_0, e_p, 0.0), e_0)
    assert torch.allclose(esd_target(e_0, e_p, 2.5), e_0 - 2.5 * (e_p - e_0))
    assert torch.equal(esd_target(torch.tensor([1.0]), torch.tensor([3.0]), 1.0), torch.tensor([-1.0]))


def test_schedule_reference_bins_and_sampler_depth():
    S, T = 50, 1000
    assert esd_schedule(0, S, T, "reference") == (50, 0, 20)
    assert esd_schedule(1, S, T, "reference") == (50, 20, 40)
    assert esd_schedule(2, S, T, "reference") == (49, 40, 60)
    assert esd_schedule(49, S, T, "reference") == (2, 980, 1000)
    assert esd_schedule(0, S, T, "matched") == (0, 980, 1000)
    assert esd_schedule(49, S, T, "matched") == (49, 0, 20)
    with pytest.raises(ValueError):
        esd_schedule(50, S, T)
    for offset in (0, 1):  # diffusers DDIM leading spacing; SD's scheduler uses steps_offset=1
        sched = DDIMScheduler(num_train_timesteps=T, steps_offset=offset)
        sched.set_timesteps(S)
        for t_enc in range(S):
            k, lo, hi = esd_schedule(t_enc, S, T, "matched")
            assert lo <= int(sched.timesteps[k]) < hi  # z's noise level lies in t's bin
            k, lo, hi = esd_schedule(t_enc, S, T, "reference")
            if t_enc >= 2:  # CompVis loop (till_T = t_enc) leaves z at ddim_timesteps[t_enc - 2] = 20 (t_enc - 2) + 1
                assert int(sched.timesteps[k]) == 20 * (t_enc - 2) + offset and lo == 20 * t_enc
            else:
                assert k == S  # the whole trajectory: z is (nearly) clean


def test_subsets_on_tiny_sd_unet(tiny_sd):
    names = [n for n, _ in tiny_sd.denoiser.named_parameters()]
    x = esd_x_names(names)
    assert x == ATTN2 and all("attn2" in n for n in x)
    u = esd_u_names(names)
    assert set(names) - set(u) == set(ATTN2) | set(TIME_AND_OUTPUT)
    assert u == [n for n in names if n not in set(ATTN2) | set(TIME_AND_OUTPUT)]  # model order kept
    bad = ("attn2", "time_embedding", "conv_out", "conv_norm_out")
    assert not any(b in n for n in u for b in bad)
    # what stays trainable in ESD-u: self-attention, the norm before attn2, the resnets' time projections
    assert "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight" in u
    assert "down_blocks.0.attentions.0.transformer_blocks.0.norm2.weight" in u
    assert "mid_block.resnets.0.time_emb_proj.weight" in u and "conv_in.weight" in u
    assert len(u) + len(x) + len(TIME_AND_OUTPUT) == len(names)


def test_class_fallback_on_mini_digits_unet():
    from tasks.mini_digits import MODEL_DIR

    m = ClassConditionalModel.load(MODEL_DIR)
    names = [n for n, _ in m.denoiser.named_parameters()]
    label, sel = esd_subset(names, "esd-u", class_conditional=True)
    assert label.startswith("class-fallback") and sel == class_fallback_names(names)
    with pytest.raises(ValueError, match="cross-attention"):  # ESD-x has no class-model analogue
        esd_subset(names, "esd-x", class_conditional=True)
    assert set(names) - set(sel) == {n for n in names if n.startswith(("time_embedding.", "conv_norm_out.", "conv_out."))}
    assert "class_embedding.weight" in sel and not esd_x_names(names)


def _spy_frozen(model):
    captured = []
    original = model.frozen_copy

    def spy():
        captured.append(original())
        return captured[-1]

    model.frozen_copy = spy
    return captured


def _check_run(model, method, forget, kind, expected_trainable):
    before = {n: p.detach().clone() for n, p in model.denoiser.named_parameters()}
    captured = _spy_frozen(model)
    ctx = RunContext(device="cpu", seed=0, task_kind=kind, num_classes=10)
    stats = method.unlearn(model, forget, forget, Budget(max_steps=3), ctx)
    assert ctx.steps_done == 3
    assert stats["trainable_tensors"] == len(expected_trainable)
    assert stats["trainable_parameters"] == sum(before[n].numel() for n in expected_trainable)
    changed = {n for n, p in model.denoiser.named_parameters() if not torch.equal(p.detach(), before[n])}
    assert changed and changed <= set(expected_trainable)  # nothing outside the subset moved, bitwise
    for n, p in captured[0].denoiser.named_parameters():  # θ* untouched
        assert torch.equal(p, before[n]), n
    return stats


@pytest.fixture(scope="module")
def digits_instance():
    from tasks.base import TASKS

    return TASKS.get("mini-digits-class").make(FAST_DIGITS).build("3", RunContext(device="cpu", seed=0, task_kind="class"))


def test_few_steps_on_mini_digits(digits_instance):
    model = digits_instance.model.trainable_copy()
    names = [n for n, _ in model.denoiser.named_parameters()]
    hp = ESDU.default_hparams("class", ddim_steps=10, lr=1e-3)
    stats = _check_run(model, ESDU(hp), digits_instance.forget, "class", class_fallback_names(names))
    assert stats["parameter_subset"].startswith("class-fallback")


def test_esd_x_refuses_class_models(digits_instance):
    model = digits_instance.model.trainable_copy()
    ctx = RunContext(device="cpu", seed=0, task_kind="class", num_classes=10)
    with pytest.raises(ConfigError, match="esd-x.*cross-attention"):
        ESDX(ESDX.default_hparams("class")).unlearn(model, digits_instance.forget, digits_instance.forget, Budget(max_steps=1), ctx)
    assert ESDX.task_kinds == ("concept", "style")  # so the planner never schedules it on class tasks


@pytest.mark.parametrize("cls,binning", [(ESDU, "reference"), (ESDX, "matched")])
def test_few_steps_on_tiny_text_model(tiny_sd, cls, binning):
    model = tiny_sd.trainable_copy()
    names = [n for n, _ in model.denoiser.named_parameters()]
    forget = UnlearnData(x=torch.zeros(3, 4, 8, 8), keys=["a nude man", "a nude woman", "nude art"], meta={"concept_prompt": "nudity"})
    hp = cls.default_hparams("concept", ddim_steps=4, lr=1e-3, batch_size=2, timestep_binning=binning)
    expected = esd_u_names(names) if cls is ESDU else esd_x_names(names)
    stats = _check_run(model, cls(hp), forget, "concept", expected)
    assert stats["parameter_subset"].startswith(cls.name) and stats["partial_samples"] == 6


def test_registered_with_paper_defaults():
    for name in ("esd-u", "esd-x"):
        cls = METHODS.get(name)
        assert set(cls.task_kinds) == ({"class", "concept", "style"} if name == "esd-u" else {"concept", "style"})
        for kind in ("class", "concept", "style"):
            hp = cls.default_hparams(kind)
            assert (hp.lr, hp.steps, hp.batch_size, hp.ddim_steps) == (1e-5, 1000, 1, 50)
            assert (hp.sample_guidance, hp.negative_guidance, hp.timestep_binning) == (3.0, 1.0, "reference")


def test_esd_conditions_on_the_tasks_concept_prompt_by_default(tiny_sd):
    """train-esd.py erases one concept prompt ('nudity'); full forget prompts (the old behaviour) are an option."""
    forget = UnlearnData(x=torch.zeros(3, 4, 8, 8), keys=["a nude man, farm", "a nude woman, city", "nude art, sea"],
                         meta={"concept_prompt": "nudity"})
    seen = {}
    for prompt in ("concept", "forget"):
        model = tiny_sd.trainable_copy()
        asked = []
        real = model.condition
        model.condition = lambda keys, real=real, asked=asked: asked.extend(keys) or real(keys)
        hp = ESDU.default_hparams("concept", ddim_steps=4, lr=1e-3, batch_size=2, **({} if prompt == "concept" else {"prompt": prompt}))
        stats = ESDU(hp).unlearn(model, forget, forget, Budget(max_steps=3), RunContext(device="cpu", seed=0, task_kind="concept"))
        seen[prompt] = set(asked) - {""}  # "" = the null condition
        assert stats["prompts"] == ("nudity" if prompt == "concept" else "3 forget prompts")
    assert seen["concept"] == {"nudity"}
    assert seen["forget"] and seen["forget"] <= set(forget.keys)


def test_esd_prompts_rule():
    data = UnlearnData(x=torch.zeros(2, 1), keys=["nude a", "nude b"], meta={"concept_prompt": "nudity"})
    assert esd_prompts(data, "concept", "concept") == ["nudity"]
    assert esd_prompts(data, "forget", "style") == ["nude a", "nude b"]
    labels = UnlearnData(x=torch.zeros(2, 1), keys=[3, 3])
    assert esd_prompts(labels, "concept", "class") == [3, 3]  # class models: the target label either way
    with pytest.raises(ConfigError, match="concept prompt.*prompt: forget"):
        esd_prompts(UnlearnData(x=torch.zeros(2, 1), keys=["a", "b"]), "concept", "concept", "esd-x")
