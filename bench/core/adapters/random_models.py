"""Randomly initialised models of the real families, built from configs and saved in the layouts the loaders read.

A rehearsal (`run --rehearse`, bench/runner/rehearsal.py), the GPU check and the tests build their stand-ins
here: a Stable-Diffusion-shaped pipeline (diffusers UNet2DConditionModel and AutoencoderKL, transformers
CLIPTextModel and CLIPTokenizer, a DDPM scheduler) saved with `save_pretrained` in the SD layout, and an open_clip
model whose config sits beside its weights file (how OpenClipJudge reads an architecture open_clip does not ship).
They load through the same code as real checkpoints; nothing here is downloaded. Tokenizer files come from
open_clip's shipped BPE vocabulary (fewer merges keep a tiny model's embedding table small).
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from bench.core.adapters.text_encoders import write_clip_tokenizer_files

# A tiny SD 1.x-shaped pipeline: 8×8×4 latents (16 px images), a 2-layer text encoder with a 16-token context
TINY_SD = {
    "merges": 2000,
    "max_length": 16,
    "text": dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, projection_dim=32),
    "unet": dict(sample_size=8, layers_per_block=1, block_out_channels=(32, 64),
                 down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
                 cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8),
    "vae": dict(latent_channels=4, block_out_channels=(8, 16), layers_per_block=1, down_block_types=("DownEncoderBlock2D",) * 2,
                up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=8, sample_size=16),
}
# The rehearsal's stand-in (bench/runner/rehearsal.py): TINY_SD's UNet at half the width (0.2M parameters), a forward
# at batch 128 in half the time; a rehearsal generates tens of thousands of images (Concept Ablation's 1,000 anchors per job)
REHEARSAL_SD = {**TINY_SD, "unet": {**TINY_SD["unet"], "block_out_channels": (16, 32)}}
# SD v1.4's scheduler as its model card and scheduler_config.json give it
SD_SCHEDULER = dict(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)

TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def build_random_sd(path: Path, config: dict = TINY_SD, seed: int = 0, latent: bool = True) -> Path:
    """A random SD 1.x-shaped pipeline from `config`, saved in the SD layout at `path`; `latent=False`: a
    pixel-space UNet and no VAE (tests of the pixel path)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    path = Path(path)
    tok_dir = path / "tokenizer"
    vocab_size = write_clip_tokenizer_files(tok_dir, n_merges=config["merges"])
    tokenizer = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=config["max_length"])
    tokenizer.save_pretrained(tok_dir)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=vocab_size, max_position_embeddings=config["max_length"], bos_token_id=vocab_size - 2,
                                        eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1, **config["text"]))
    text.save_pretrained(path / "text_encoder")
    unet_cfg = dict(config["unet"])
    if not latent:
        unet_cfg["sample_size"] = 2 * unet_cfg["sample_size"]
    channels = 4 if latent else 3
    UNet2DConditionModel(in_channels=channels, out_channels=channels, **unet_cfg).save_pretrained(path / "unet")
    if latent:
        AutoencoderKL(in_channels=3, out_channels=3, **config["vae"]).save_pretrained(path / "vae")
    DDPMScheduler(**SD_SCHEDULER).save_pretrained(path / "scheduler")
    (path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    return path


def build_random_openclip(path: Path, name: str, config: dict = TINY_CLIP, seed: int = 0) -> Path:
    """A random open_clip model of architecture `config`, registered as `name`: `<name>.json` and its state dict
    (`<name>.pt`) written to the folder `path`; returns the weights file (OpenClipJudge finds the config beside it)."""
    import open_clip

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / f"{name}.json").write_text(json.dumps(config))
    open_clip.add_model_config(path / f"{name}.json")
    torch.manual_seed(seed)
    model = open_clip.create_model(name)
    weights = path / f"{name}.pt"
    torch.save(model.state_dict(), weights)
    return weights
