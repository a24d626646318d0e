"""Fast paths must not change results: each is checked against its plain counterpart (CPU, tiny models)."""

import pytest
import torch

from bench.core.adapters import model_cache
from bench.core.adapters.class_conditional import ClassConditionalModel
from bench.core.adapters.text_to_image import TextToImageModel
from bench.core.errors import ConfigError
from bench.core.fast import ENV_VAR, FastPaths, apply_fast_paths, attention_processors, parse_overrides, set_attention
from tests.t2i_fixtures import build_tiny_sd

UNET = dict(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1,
            block_out_channels=(8, 16), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
            up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=4, attention_head_dim=4)


def _model():
    return ClassConditionalModel.from_config(UNET, {"num_train_timesteps": 50}, ["a", "b", "c"], seed=0)


@pytest.fixture(scope="module")
def tiny_sd_dir(tmp_path_factory):
    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd-fast"))


def _tiny_sd(path):
    model_cache.clear()
    return TextToImageModel.from_pretrained_sd(str(path))


def _inputs(n=4, shape=(1, 8, 8), seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.tensor([3, 10, 20, 40][:n])


def _rel_err(a, b):
    return float((a - b).norm() / b.norm())


def _grads(model, x0, keys, seed=0):
    model.denoiser.zero_grad(set_to_none=True)
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(x0.shape, generator=g)
    t = torch.randint(0, model.num_train_timesteps, (x0.shape[0],), generator=g)
    loss = ((model.predict_noise(model.add_noise(x0, noise, t), t, model.condition(keys)) - noise) ** 2).mean()
    loss.backward()
    return loss.detach(), torch.cat([p.grad.flatten() for p in model.denoiser.parameters() if p.grad is not None])


# -- batched classifier-free guidance --------------------------------------------------------------
def test_batched_cfg_equals_two_forwards():
    m = _model()
    m.denoiser.eval()
    x, t = _inputs()
    cond = m.condition([0, 1, 2, 1])
    with torch.no_grad():
        fast = m.guided_noise(x, t, cond, 3.0)
        eps_u = m.predict_noise(x, t, m.null_condition(4))
        eps_c = m.predict_noise(x, t, cond)
    torch.testing.assert_close(fast, eps_u + 3.0 * (eps_c - eps_u), atol=1e-5, rtol=1e-4)


def test_guidance_one_is_plain_conditional_forward():
    m = _model()
    m.denoiser.eval()
    x = torch.randn(2, 1, 8, 8)
    t = torch.tensor(7)
    cond = m.condition([0, 2])
    with torch.no_grad():
        torch.testing.assert_close(m.guided_noise(x, t, cond, 1.0), m.predict_noise(x, t, cond))


# -- run options -------------------------------------------------------------------------------
def test_defaults_per_device_and_overrides(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert FastPaths.resolve("cpu") == FastPaths(autocast=None, compile=False, gradient_checkpointing=False, sdpa=True)
    cuda = FastPaths.resolve("cuda")
    assert cuda.autocast == "bf16" and cuda.sdpa and not cuda.compile
    # unlearning at the references' precision by default: fp32, no TF32; bf16 only for evaluation sampling
    assert cuda.train_autocast is None and not cuda.tf32 and cuda.for_unlearning().autocast is None
    chosen = FastPaths.resolve("cuda", "train_autocast=bf16")
    assert chosen.for_unlearning().autocast == "bf16" and chosen.to_dict()["train_autocast"] == "bf16"  # explicit, recorded
    with pytest.raises(ConfigError, match="train_autocast must be one of"):
        FastPaths(train_autocast="int8")
    assert FastPaths.resolve("cuda", "autocast=none, gradient-checkpointing=1").autocast is None
    assert FastPaths.resolve("cpu", {"compile": "true"}).compile
    monkeypatch.setenv(ENV_VAR, "autocast=bf16")
    assert FastPaths.resolve("cpu").autocast == "bf16"
    assert FastPaths.resolve("cpu", {"autocast": None}).autocast is None  # explicit beats the environment
    with pytest.raises(ConfigError, match="unknown fast path option"):
        parse_overrides("turbo=1")
    with pytest.raises(ConfigError, match="autocast"):
        FastPaths(autocast="int8")
    with pytest.raises(ConfigError, match="boolean"):
        parse_overrides({"compile": "maybe"})


def test_fp16_autocast_never_applies_to_gradient_steps():
    fp = FastPaths(autocast="fp16")
    assert fp.autocast_dtype(training=False) is torch.float16 and fp.autocast_dtype(training=True) is None
    assert FastPaths(autocast="bf16").autocast_dtype(training=True) is torch.bfloat16


# -- bf16 autocast: the CUDA default, tested through the same code path on CPU --------------------
def test_bf16_autocast_sampling_matches_fp32():
    m = _model()
    m.denoiser.eval()
    x, t = _inputs()
    cond = m.condition([0, 1, 2, 1])
    with torch.no_grad():
        ref = m.guided_noise(x, t, cond, 3.0)
        apply_fast_paths(m, FastPaths(autocast="bf16"))
        fast = m.guided_noise(x, t, cond, 3.0)
    assert fast.dtype == torch.float32  # the DDIM arithmetic stays fp32
    assert _rel_err(fast, ref) < 3e-2
    imgs_ref = _model().sample([0, 1, 2], [5, 6, 7], steps=4, guidance=2.0)
    imgs = m.sample([0, 1, 2], [5, 6, 7], steps=4, guidance=2.0)
    assert (imgs - imgs_ref).abs().mean() < 1e-2


def test_bf16_autocast_training_gradients_match_fp32(tiny_sd_dir):
    ref, fast = _tiny_sd(tiny_sd_dir).trainable_copy(), _tiny_sd(tiny_sd_dir).trainable_copy()
    apply_fast_paths(fast, FastPaths(autocast="bf16"))
    x0 = torch.randn(4, *ref.sample_shape, generator=torch.Generator().manual_seed(2))
    keys = ["a cat", "a dog", "a red house", ""]
    loss_r, g_r = _grads(ref, x0, keys)
    loss_f, g_f = _grads(fast, x0, keys)
    assert abs(float(loss_f - loss_r)) / float(loss_r) < 2e-2
    assert torch.nn.functional.cosine_similarity(g_f, g_r, dim=0) > 0.99
    assert all(p.grad.dtype == torch.float32 for p in fast.denoiser.parameters() if p.grad is not None)


def test_half_precision_weights_are_not_autocast(tiny_sd_dir):
    m = _tiny_sd(tiny_sd_dir)
    m.denoiser.to(torch.bfloat16)
    apply_fast_paths(m, FastPaths(autocast="fp16"))
    x, t = _inputs(2, m.sample_shape)
    with torch.no_grad():
        out = m.predict_noise(x, t, m.condition(["a", "b"]))
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


# -- SDPA attention ------------------------------------------------------------------------------
def test_loaded_unets_use_sdpa_and_it_matches_classic_attention(tiny_sd_dir):
    m = _tiny_sd(tiny_sd_dir)
    apply_fast_paths(m, FastPaths.resolve("cpu"))
    assert attention_processors(m.denoiser) == {"AttnProcessor2_0"}
    assert attention_processors(m.frozen_copy().denoiser) == {"AttnProcessor2_0"}  # copies inherit
    x, t = _inputs(3, m.sample_shape)
    cond = m.condition(["a cat", "a dog", "a house"])
    with torch.no_grad():
        fast = m.guided_noise(x, t[:3], cond, 7.5)
        assert set_attention(m.denoiser, sdpa=False) > 0
        assert attention_processors(m.denoiser) == {"AttnProcessor"}
        classic = m.guided_noise(x, t[:3], cond, 7.5)
    torch.testing.assert_close(fast, classic, atol=1e-5, rtol=1e-4)
    c = _model()  # UNet2DModel has no set_attn_processor: set_attention still reaches its blocks
    assert set_attention(c.denoiser, sdpa=True) > 0 and attention_processors(c.denoiser) == {"AttnProcessor2_0"}


# -- cached text embeddings ----------------------------------------------------------------------
def test_condition_encodes_each_prompt_once(tiny_sd_dir):
    m = _tiny_sd(tiny_sd_dir)
    m._cache = {}
    seen = []
    encode = m.text_encoder.encode
    m.text_encoder.encode = lambda prompts: (seen.extend(prompts), encode(prompts))[1]
    try:
        a = m.condition(["a cat", "a dog", "a cat"])
        b = m.condition(["a dog", "a cat"])
        m.sample(["a cat", "a dog"], [1, 2], steps=2, guidance=3.0)
    finally:
        del m.text_encoder.encode
    assert sorted(seen) == ["", "a cat", "a dog"]  # "" is the null prompt of the sampler's CFG
    torch.testing.assert_close(a[1], b[0])
    torch.testing.assert_close(a[0], a[2])


# -- gradient checkpointing -----------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["text", "class"])
def test_gradient_checkpointing_gives_the_same_gradients(kind, tiny_sd_dir):
    make = (lambda: _tiny_sd(tiny_sd_dir).trainable_copy()) if kind == "text" else (lambda: _model().trainable_copy())
    ref, ckpt = make(), make()
    apply_fast_paths(ckpt, FastPaths(gradient_checkpointing=True))
    assert ckpt.denoiser.is_gradient_checkpointing and not ref.denoiser.is_gradient_checkpointing
    x0 = torch.randn(3, *ref.sample_shape, generator=torch.Generator().manual_seed(4))
    keys = ["a cat", "a dog", ""] if kind == "text" else [0, 1, 2]
    loss_r, g_r = _grads(ref, x0, keys)
    loss_c, g_c = _grads(ckpt, x0, keys)
    torch.testing.assert_close(loss_c, loss_r)
    torch.testing.assert_close(g_c, g_r, atol=1e-6, rtol=1e-5)
    apply_fast_paths(ckpt, FastPaths())
    assert not ckpt.denoiser.is_gradient_checkpointing


# -- torch.compile ------------------------------------------------------------------------------
def _check_compiled_denoiser():
    m = _model()
    m.denoiser.eval()
    x, t = _inputs()
    cond = m.condition([0, 1, 2, 1])
    with torch.no_grad():
        ref = m.guided_noise(x, t, cond, 3.0)
        apply_fast_paths(m, FastPaths(compile=True))
        fast = m.guided_noise(x, t, cond, 3.0)
        torch.testing.assert_close(fast, ref, atol=1e-4, rtol=1e-4)
        other = m.trainable_copy()
        for p in other.denoiser.parameters():
            p.add_(0.1)
        other.denoiser.eval()
        assert not torch.allclose(other.guided_noise(x, t, cond, 3.0), ref, atol=1e-3)  # its own weights
        torch.testing.assert_close(m.guided_noise(x, t, cond, 3.0), ref, atol=1e-4, rtol=1e-4)
    assert [n for n, _ in m.denoiser.named_parameters()] == [n for n, _ in _model().denoiser.named_parameters()]


def test_compiled_denoiser_wiring(monkeypatch):
    """Graph capture + AOT autograd without code generation: the adapter wiring, in seconds."""
    import bench.core.fast

    monkeypatch.setattr(bench.core.fast, "COMPILE_OPTIONS", {"backend": "aot_eager"})
    _check_compiled_denoiser()


@pytest.mark.slow
def test_compiled_denoiser_inductor_matches_eager(request):
    """The real default backend (C++ code generation: minutes on a small CPU); run with `-m slow`."""
    if "slow" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("inductor compilation is slow on CPU: select with -m slow")
    _check_compiled_denoiser()


# -- per-process model cache --------------------------------------------------------------------
def test_model_cache_loads_once_and_hands_out_independent_copies(tmp_path):
    path = tmp_path / "digits"
    _model().save(path)
    model_cache.clear()
    a = ClassConditionalModel.load(path)
    b = ClassConditionalModel.load(path)
    assert model_cache.stats() == {"hits": 1, "misses": 1, "entries": 1}
    assert a.denoiser is not b.denoiser
    h = b.weights_hash()
    with torch.no_grad():
        next(a.denoiser.parameters()).add_(1.0)
    assert a.weights_hash() != h  # in-place edits invalidate the carried hash
    assert ClassConditionalModel.load(path).weights_hash() == h  # the cached entry was untouched
    b.denoiser.conv_in.weight = torch.nn.Parameter(b.denoiser.conv_in.weight.detach() * 2)
    assert b.weights_hash() != h
    _model().from_config(UNET, {"num_train_timesteps": 50}, ["a", "b", "c"], seed=1).save(path)  # rewritten on disk
    assert ClassConditionalModel.load(path).weights_hash() != h
    assert model_cache.stats()["misses"] == 2


def test_model_cache_can_be_turned_off(tmp_path, monkeypatch):
    _model().save(tmp_path / "m")
    model_cache.clear()
    monkeypatch.setenv("UNLEARN_BENCH_MODEL_CACHE", "0")
    ClassConditionalModel.load(tmp_path / "m")
    ClassConditionalModel.load(tmp_path / "m")
    assert model_cache.stats()["hits"] == 0 and model_cache.stats()["entries"] == 0


# -- cached original-model images ---------------------------------------------------------------
def test_original_images_generated_once_per_weights_prompts_seeds_sampler(tiny_sd_dir, tmp_path, monkeypatch):
    from tasks.mini_shapes import MiniShapesConcept

    monkeypatch.setenv("UNLEARN_BENCH_CACHE", str(tmp_path / "cache"))
    m = _tiny_sd(tiny_sd_dir)
    calls = []
    sample = m.sample
    m.sample = lambda *a, **k: (calls.append(len(a[0])), sample(*a, **k))[1]
    task = MiniShapesConcept.make({"sample_steps": 2})
    wh = m.weights_hash()
    first = task.original_images(m, wh, ["a cat", "a dog"], [1, 2])
    again = task.original_images(m, wh, ["a cat", "a dog"], [1, 2])  # e.g. a second metric or the next job
    assert calls == [2]
    assert (again - first).abs().max() <= 1 / 255
    task.original_images(m, wh, ["a cat", "a dog"], [1, 3])  # other seeds: a new set
    MiniShapesConcept.make({"sample_steps": 3}).original_images(m, wh, ["a cat", "a dog"], [1, 2])  # other sampler
    assert calls == [2, 2, 2]


def test_the_unlearning_stage_runs_at_the_training_precision(monkeypatch):
    """The method's model gets `for_unlearning()` (train_autocast), the judge's the evaluation autocast."""
    from bench.runner import job, unlearn_stage
    from bench.runner.plan import JobSpec
    from tests.helpers import method_stage_in_process

    seen = {}

    def spy(where):
        def apply(model, fast):
            seen.setdefault(where, fast)
            return apply_fast_paths(model, fast)
        return apply

    monkeypatch.setattr(unlearn_stage, "apply_fast_paths", spy("unlearn"))
    monkeypatch.setattr(job, "apply_fast_paths", spy("judge"))
    method_stage_in_process(monkeypatch)  # the spy must see the method stage, so it runs in this process
    spec = JobSpec("t", "mini-digits-class", {"forget_samples": 4, "remain_samples_per_class": 2, "sample_steps": 2}, "0",
                   "finetune", "finetune", {"steps": 1, "batch_size": 4}, 0, {"max_steps": 1})
    rec = job.execute(spec, device=torch.device("cpu"), fast_paths="autocast=bf16")
    assert rec["status"] == "ok", rec.get("error")
    assert seen["judge"].autocast == "bf16" and seen["unlearn"].autocast is None  # fp32 unlearning unless asked
