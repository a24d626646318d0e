"""Models the speed benchmarks run on, each a suite adapter plus the diffusers pipeline built from
the SAME components (unet, text encoder/tokenizer, VAE, a DDIM scheduler from the same config).

Weights are random (speed does not depend on their values) except mini-digits, which is the
shipped checkpoint. Sizes: `mini-shapes` (the mini text world's 1 M-parameter pixel UNet with a
CLIP text tower of the mini encoder's size), `tiny-sd` (tests/t2i_fixtures.py's SD-shaped latent
pipeline) and `sd14` (the SD v1.4 architecture, benchmarks/sd_requirements.py; GPU-sized).
"""
from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # tests.t2i_fixtures, benchmarks.sd_requirements when run as a script

SIZES = ("mini-shapes", "tiny-sd", "sd14")


def build_mini_shapes_sized(device="cpu", seed: int = 0):
    """The mini-shapes base model's architecture (pixel space, no VAE), HF CLIP text tower of its size."""
    from diffusers import DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from bench.core.adapters.text_encoders import HFCLIPTextEncoder, write_clip_tokenizer_files
    from bench.core.adapters.text_to_image import TextToImageModel
    from tasks.mini.shapes_recipes import MINI_SHAPES_RECIPE

    torch.manual_seed(seed)
    tok_dir = Path(tempfile.mkdtemp(prefix="bench-tok-")) / "tokenizer"
    vocab = write_clip_tokenizer_files(tok_dir, n_merges=2000)
    tokenizer = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"), model_max_length=16)
    text = CLIPTextModel(CLIPTextConfig(  # mini-shapes encoder: width 64, 3 layers, context 16
        vocab_size=vocab, hidden_size=64, intermediate_size=256, num_hidden_layers=3, num_attention_heads=2,
        max_position_embeddings=16, projection_dim=64, bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1,
    ))
    unet = UNet2DConditionModel(**MINI_SHAPES_RECIPE.unet)
    enc = HFCLIPTextEncoder(tokenizer, text, "random CLIP text (mini-shapes size)")
    return TextToImageModel(unet, enc, DDPMScheduler(**MINI_SHAPES_RECIPE.scheduler), vae=None).to(device)


def build_tiny_sd_model(device="cpu", seed: int = 0):
    """tests/t2i_fixtures.py's tiny SD-shaped pipeline, saved and loaded through the SD loading path."""
    from bench.core.adapters.text_to_image import TextToImageModel
    from tests.t2i_fixtures import build_tiny_sd

    path = build_tiny_sd(Path(tempfile.mkdtemp(prefix="bench-tiny-sd-")), seed=seed, latent=True)
    return TextToImageModel.from_pretrained_sd(str(path), device=device)


def build_sd14(device="cpu", resolution: int = 512):
    from benchmarks.sd_requirements import build_random_sd14

    model = build_random_sd14(resolution, str(device))
    model.text_encoder.tokenizer.model_max_length = 77  # SD's tokenizer_config value; the pipeline pads to it
    return model


def build(size: str, device="cpu", resolution: int = 512):
    if size == "mini-shapes":
        return build_mini_shapes_sized(device)
    if size == "tiny-sd":
        return build_tiny_sd_model(device)
    if size == "sd14":
        return build_sd14(device, resolution)
    raise ValueError(f"unknown size {size!r}; one of {SIZES}")


def pipeline_from(model):
    """A diffusers StableDiffusionPipeline over the adapter's own modules (no copies), DDIM sampler.

    The pipeline's constructor rewrites legacy scheduler configs (steps_offset, clip_sample); the
    scheduler is set again afterwards so both samplers run the very same DDIM (checked: same images)."""
    import warnings

    from diffusers import DDIMScheduler, StableDiffusionPipeline

    enc = model.text_encoder
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        pipe = StableDiffusionPipeline(
            vae=model.vae, text_encoder=enc.model, tokenizer=enc.tokenizer, unet=model.denoiser,
            scheduler=DDIMScheduler.from_config(model.noise_scheduler.config),
            safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        )
    pipe.scheduler = DDIMScheduler.from_config(model.noise_scheduler.config)
    pipe.set_progress_bar_config(disable=True)
    return pipe


@torch.no_grad()
def naive_pipeline_loop(pipe, model, prompts, seeds, steps: int, guidance: float) -> torch.Tensor:
    """Reference-code style: one pipeline call per prompt, a seeded generator each; images in [0, 1].

    Pixel-space models (no VAE) ask the pipeline for its final `latents` (= pixels) and map them to
    [0, 1] as its postprocessing would; latent models get the pipeline's own decoded output."""
    out = []
    for prompt, seed in zip(prompts, seeds):
        gen = torch.Generator().manual_seed(int(seed))
        if model.vae is None:
            size = model.sample_shape[1] * pipe.vae_scale_factor  # the pipeline divides by it
            x = pipe(prompt, height=size, width=size, num_inference_steps=steps, guidance_scale=guidance,
                     generator=gen, output_type="latent").images
            out.append(((x.float().clamp(-1, 1) + 1) / 2).cpu())
        else:
            out.append(pipe(prompt, num_inference_steps=steps, guidance_scale=guidance, generator=gen,
                            output_type="pt").images.float().cpu())
    return torch.cat(out)


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
