import json

import pytest
import torch

from bench.core.adapters import load_model
from bench.core.adapters.text_encoders import TextEncoder
from bench.core.adapters.text_to_image import TextToImageModel
from bench.core.errors import MissingWeightsError
from tests.t2i_fixtures import build_tiny_sd


@pytest.fixture(scope="session")
def tiny_sd_dir(tmp_path_factory):
    return build_tiny_sd(tmp_path_factory.mktemp("tiny-sd"))


@pytest.fixture(scope="session")
def tiny_sd(tiny_sd_dir):
    return TextToImageModel.from_pretrained_sd(str(tiny_sd_dir))


def test_loads_sd_layout_and_samples_deterministically(tiny_sd):
    assert isinstance(tiny_sd.text_encoder, TextEncoder)
    assert tiny_sd.kind == "text" and tiny_sd.image_size == 16
    imgs = tiny_sd.sample(["a cat", "a dog", "a cat"], [1, 2, 1], steps=3, guidance=7.5, batch_size=2)
    assert imgs.shape == (3, 3, 16, 16) and imgs.min() >= 0 and imgs.max() <= 1
    # same prompt + seed -> same image regardless of batch position
    assert torch.allclose(imgs[0], imgs[2], atol=1e-5)
    again = tiny_sd.sample(["a cat"], [1], steps=3, guidance=7.5)
    assert torch.allclose(again[0], imgs[0], atol=1e-5)


def test_condition_cache_and_null(tiny_sd):
    c = tiny_sd.condition(["a cat", "a dog"])
    assert c.shape == (2, 16, 32)
    assert "a cat" in tiny_sd._cache
    null = tiny_sd.null_condition(3)
    assert null.shape == (3, 16, 32)
    assert torch.equal(null[0], tiny_sd.condition([""])[0])


def test_parameter_groups_cross_attention_is_attn2(tiny_sd):
    groups = tiny_sd.parameter_groups()
    assert groups["cross_attention"] and all(".attn2." in n for n in groups["cross_attention"])
    assert groups["conditioning"] == groups["cross_attention"]
    assert groups["output"] and groups["time_embedding"]


def test_save_load_roundtrip(tiny_sd, tmp_path):
    tiny_sd.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "unlearn_bench.json").read_text())
    assert meta["kind"] == "text" and meta["vae"]
    for sub in ("unet", "vae", "text_encoder", "tokenizer", "scheduler"):
        assert (tmp_path / "m" / sub).is_dir()
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, TextToImageModel)
    assert loaded.weights_hash() == tiny_sd.weights_hash()
    a = tiny_sd.sample(["a red house"], [3], steps=2, guidance=3.0)
    b = loaded.sample(["a red house"], [3], steps=2, guidance=3.0)
    assert torch.allclose(a, b, atol=1e-5)


def test_encode_decode_shapes(tiny_sd):
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    z = tiny_sd.encode(x)
    assert z.shape == (2, 4, 8, 8)
    assert tiny_sd.decode(z).shape == (2, 3, 16, 16)


def test_training_step_changes_only_unet(tiny_sd):
    m = tiny_sd.trainable_copy()
    x0 = m.encode(torch.rand(2, 3, 16, 16) * 2 - 1)
    noise = torch.randn_like(x0)
    t = m.random_timesteps(2)
    loss = ((m.predict_noise(m.add_noise(x0, noise, t), t, m.condition(["a", "b"])) - noise) ** 2).mean()
    loss.backward()
    assert any(p.grad is not None for p in m.denoiser.parameters())
    assert all(p.grad is None for p in m.text_encoder.model.parameters())


def test_missing_sd_weights_names_repo_and_command(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(MissingWeightsError, match=r"CompVis/stable-diffusion-v1-4 is not in the Hugging Face cache .*`unlearn-bench fetch --suite paper`"):
        TextToImageModel.from_pretrained_sd("CompVis/stable-diffusion-v1-4")
    with pytest.raises(MissingWeightsError):
        load_model(tmp_path / "nothing-here")
