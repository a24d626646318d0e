"""A tiny Stable-Diffusion-shaped pipeline built from configs, saved in the SD layout.

Tokenizer files come from open_clip's shipped BPE vocabulary (truncated merges keep the
embedding table small); everything else is randomly initialised diffusers/transformers models.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from bench.core.adapters.text_encoders import write_clip_tokenizer_files


def build_tiny_sd(path: Path, seed: int = 0, latent: bool = True) -> Path:
    """Random tiny SD 1.x-shaped pipeline saved with save_pretrained in the SD layout."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    path = Path(path)
    tok_dir = path / "tokenizer"
    vocab_size = write_clip_tokenizer_files(tok_dir, n_merges=2000)
    tokenizer = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=16)
    tokenizer.save_pretrained(tok_dir)
    text = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=16, projection_dim=32,
            bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1,
        )
    )
    text.save_pretrained(path / "text_encoder")
    unet = UNet2DConditionModel(
        sample_size=8 if latent else 16, in_channels=4 if latent else 3, out_channels=4 if latent else 3,
        layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8,
    )
    unet.save_pretrained(path / "unet")
    if latent:
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(8, 16), layers_per_block=1,
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2, norm_num_groups=8,
            sample_size=16,
        )
        vae.save_pretrained(path / "vae")
    DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012).save_pretrained(
        path / "scheduler"
    )
    (path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    return path


TINY_JUDGE = "tiny-test-clip"


def build_tiny_openclip(path: Path, seed: int = 0) -> Path:
    """A random open_clip model from a registered tiny config; its state dict saved to a local file."""
    import open_clip

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    cfg = {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
        "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
    }
    (path / f"{TINY_JUDGE}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(path / f"{TINY_JUDGE}.json")
    torch.manual_seed(seed)
    model = open_clip.create_model(TINY_JUDGE)
    weights = path / "tiny_clip.pt"
    torch.save(model.state_dict(), weights)
    return weights
