"""Randomly initialised models of the real families, built from configs and saved in the layouts the loaders read.

A rehearsal (`run --rehearse`, bench/runner/rehearsal.py), the GPU check (benchmarks/gpu_check.py), the speed
benchmarks and the tests build their stand-ins here: a Stable-Diffusion-shaped pipeline (diffusers
UNet2DConditionModel and AutoencoderKL, transformers CLIPTextModel and CLIPTokenizer, a DDPM scheduler) saved with
`save_pretrained` in the SD layout, a class-conditional DDPM saved as `pretrain` saves one, and an open_clip model
whose config sits beside its weights file (how OpenClipJudge reads an architecture open_clip does not ship).
They load through the same code as real checkpoints; nothing here is downloaded. Tokenizer files come from
open_clip's shipped BPE vocabulary (all 48,894 merges: CLIP's 49,408-token vocabulary; fewer keep a tiny model's
embedding table small).

Configs: `TINY_SD` (a 16 px SD 1.x-shaped pipeline) and `sd14_config()`, SD v1.4's own architecture read from its
published config files kept in configs/sd-v1-4/ (860M-parameter UNet at 64×64 latents, CLIP ViT-L/14 text tower,
the 84M-parameter VAE: 512 px images).
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import torch

from bench.core.adapters.text_encoders import write_clip_tokenizer_files

SD14_CONFIG_DIR = Path(__file__).parent / "configs" / "sd-v1-4"
_NOT_ARCHITECTURE = {"architectures", "model_type", "transformers_version", "torch_dtype"}  # besides the "_…" keys


def read_sd_configs(root: Path) -> dict:
    """An SD 1.x layout's config files (unet/, text_encoder/, vae/config.json, scheduler/scheduler_config.json) as a
    builder config (TINY_SD's keys); the tokenizer's length is the text encoder's context."""
    def read(rel: str) -> dict:
        raw = json.loads((Path(root) / rel).read_text())
        return {k: v for k, v in raw.items() if not k.startswith("_") and k not in _NOT_ARCHITECTURE}

    text = read("text_encoder/config.json")
    return {"merges": None, "max_length": text["max_position_embeddings"], "text": text, "unet": read("unet/config.json"),
            "vae": read("vae/config.json"), "scheduler": read("scheduler/scheduler_config.json")}


@lru_cache(maxsize=1)
def sd14_config() -> dict:
    """SD v1.4's architecture (configs/sd-v1-4/, as published): the config build_random_sd takes."""
    return read_sd_configs(SD14_CONFIG_DIR)


# SD v1.4's scheduler as its model card and scheduler_config.json give it (the tiny pipeline's too): the noise schedule, and
# skip_prk_steps, how its pipeline runs PNDM (the task option eval_scheduler: pndm; DDPM and DDIM read no such key)
SD_SCHEDULER = {k: sd14_config()["scheduler"][k] for k in ("num_train_timesteps", "beta_schedule", "beta_start", "beta_end",
                                                           "skip_prk_steps")}

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
    "scheduler": SD_SCHEDULER,
}

# The rehearsal's stand-in (bench/runner/rehearsal.py): TINY_SD's UNet at half the width (0.2M parameters), a forward
# at batch 128 in half the time; a rehearsal generates tens of thousands of images (Concept Ablation's 1,000 anchors per job)
REHEARSAL_SD = {**TINY_SD, "unet": {**TINY_SD["unet"], "block_out_channels": (16, 32)}}

TINY_CLIP = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 8, "head_width": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def random_sd_modules(tok_dir: Path, config: dict = TINY_SD, seed: int = 0, latent: bool = True) -> dict:
    """The modules of a random SD 1.x-shaped pipeline of `config` (tokenizer files written to `tok_dir`): tokenizer,
    text_encoder, unet, vae (None when `latent=False`: a pixel-space UNet, tests of the pixel path) and scheduler."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    tok_dir = Path(tok_dir)
    vocab_size = write_clip_tokenizer_files(tok_dir, n_merges=config["merges"])
    tokenizer = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=config["max_length"])
    text_cfg = {"vocab_size": vocab_size, "max_position_embeddings": config["max_length"], "bos_token_id": vocab_size - 2,
                "eos_token_id": vocab_size - 1, "pad_token_id": vocab_size - 1, **config["text"]}  # a published config's own ids win
    if text_cfg["vocab_size"] != vocab_size:
        raise ValueError(f"the text encoder's config has {text_cfg['vocab_size']} tokens, its tokenizer {vocab_size}")
    text = CLIPTextModel(CLIPTextConfig(**text_cfg))
    unet_cfg = dict(config["unet"])
    if not latent:
        unet_cfg["sample_size"] = 2 * unet_cfg["sample_size"]
    channels = 4 if latent else 3
    unet = UNet2DConditionModel(**{**unet_cfg, "in_channels": channels, "out_channels": channels})
    vae = AutoencoderKL(**{"in_channels": 3, "out_channels": 3, **config["vae"]}) if latent else None
    scheduler = DDPMScheduler.from_config(config.get("scheduler", SD_SCHEDULER))
    return {"tokenizer": tokenizer, "text_encoder": text, "unet": unet, "vae": vae, "scheduler": scheduler}


def build_random_sd(path: Path, config: dict = TINY_SD, seed: int = 0, latent: bool = True) -> Path:
    """A random SD 1.x-shaped pipeline from `config` (TINY_SD, sd14_config()), saved in the SD layout at `path`;
    `latent=False`: a pixel-space UNet and no VAE (tests of the pixel path)."""
    path = Path(path)
    modules = random_sd_modules(path / "tokenizer", config, seed, latent)
    modules["tokenizer"].save_pretrained(path / "tokenizer")
    for name in ("text_encoder", "unet", "vae", "scheduler"):
        if modules[name] is not None:
            modules[name].save_pretrained(path / name)
    (path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    return path


def build_random_class_model(path: Path, recipe, class_names: Sequence[str]) -> Path:
    """A class-conditional DDPM of `recipe`'s architecture (bench/core/class_training.py), random weights (the recipe's
    seed), saved where `pretrain` saves one with the recipe beside it (so Retrain re-runs that recipe); untrained."""
    from bench.core.adapters.class_conditional import ClassConditionalModel

    path = Path(path)
    ClassConditionalModel.from_config(recipe.unet, recipe.scheduler, class_names, seed=recipe.seed).save(path)
    (path / "recipe.json").write_text(json.dumps({"recipe": recipe.to_dict(), "measured": {"random_weights": True}}, indent=2,
                                                 sort_keys=True) + "\n")
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
