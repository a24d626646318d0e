"""Recipes for the mini text world's committed checkpoints, and their loaders.

`unlearn-bench pretrain mini-shapes-encoder` / `mini-shapes-judge` train the two small open_clip
CLIPs; `unlearn-bench pretrain mini-shapes` trains the text-conditional pixel-space UNet on the
encoder's per-token states. Each writes `recipe.json` (recipe, measurements, weights SHA-256).
"""
from __future__ import annotations

import copy
import math
import shutil
import time
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path

import torch

from bench.core.adapters.text_to_image import TextToImageModel
from bench.core.class_training import ema_update
from bench.core.denoising import simple_loss
from bench.core.errors import MissingWeightsError
from bench.core.pretrain import register_pretrain
from tasks.base import SHAPES_QUALITY_SEED, seeds_for
from tasks.mini import CHECKPOINT_DIR, shapes
from tasks.mini.recipes import _write_recipe
from tasks.mini.shapes_clip import ClipRecipe, MiniClip, MiniClipJudge, OpenClipTextEncoder, pretrain_clip

ENCODER_DIR = CHECKPOINT_DIR / "mini-shapes-text-encoder"
JUDGE_DIR = CHECKPOINT_DIR / "mini-shapes-judge"
MODEL_DIR = CHECKPOINT_DIR / "mini-shapes"

ENCODER_RECIPE = ClipRecipe(role="encoder", seed=0, steps=1500)
JUDGE_RECIPE = ClipRecipe(role="judge", seed=1, steps=1500)


@dataclass
class ShapesDiffusionRecipe:
    """Everything that determines the mini-shapes UNet (hashed into provenance via recipe.json)."""

    unet: dict
    scheduler: dict
    steps: int
    batch_size: int
    lr: float
    images_per_spec: int = 16
    p_uncond: float = 0.1  # prompt dropout (empty prompt) for classifier-free guidance
    ema_decay: float = 0.995
    warmup: int = 100
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


MINI_SHAPES_RECIPE = ShapesDiffusionRecipe(
    unet=dict(
        sample_size=shapes.SIZE,
        in_channels=3,
        out_channels=3,
        block_out_channels=(32, 64),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),  # cross-attention at 8×8 (and the mid block)
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=64,
        attention_head_dim=8,
        norm_num_groups=8,
    ),
    scheduler=dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2"),
    steps=3000,
    batch_size=64,
    lr=1e-3,
)


@register_pretrain("mini-shapes-encoder")
def pretrain_shapes_encoder(out: str | None = None, device: str = "cpu") -> dict:
    out = Path(out or ENCODER_DIR)
    measured = pretrain_clip(ENCODER_RECIPE, out, "mini-shapes-clip-encoder")
    return _write_recipe(out, {**ENCODER_RECIPE.to_dict(), "templates": list(ENCODER_RECIPE.templates())}, measured)


@register_pretrain("mini-shapes-judge")
def pretrain_shapes_judge(out: str | None = None, device: str = "cpu") -> dict:
    out = Path(out or JUDGE_DIR)
    measured = pretrain_clip(JUDGE_RECIPE, out, "mini-shapes-clip-judge")
    return _write_recipe(out, {**JUDGE_RECIPE.to_dict(), "templates": list(JUDGE_RECIPE.templates())}, measured)


@lru_cache(maxsize=4)
def load_shapes_judge(directory: str | None = None) -> MiniClipJudge:
    return MiniClipJudge(MiniClip.load(directory or JUDGE_DIR, name="mini-shapes-clip-judge"))


def load_shapes_encoder(directory: str | None = None, device="cpu") -> OpenClipTextEncoder:
    return OpenClipTextEncoder(MiniClip.load(directory or ENCODER_DIR, device=device, name="mini-shapes-clip-encoder"))


def build_shapes_model(recipe: ShapesDiffusionRecipe, encoder: OpenClipTextEncoder) -> TextToImageModel:
    from diffusers import DDPMScheduler, UNet2DConditionModel

    torch.manual_seed(recipe.seed)
    unet = UNet2DConditionModel(**recipe.unet)
    return TextToImageModel(unet, encoder, DDPMScheduler(**recipe.scheduler), vae=None, source="unlearn-bench pretrain mini-shapes")


def train_shapes_model(recipe: ShapesDiffusionRecipe, encoder: OpenClipTextEncoder, device="cpu", progress=None) -> TextToImageModel:
    """DDPM training on the drawn world (canonical captions), prompt dropout, cosine lr, EMA weights."""
    device = torch.device(device)
    model = build_shapes_model(recipe, encoder).to(device)
    specs = [s for s in shapes.all_specs() for _ in range(recipe.images_per_spec)]
    x = torch.from_numpy(shapes.draw_batch(specs, list(range(len(specs))))).to(device) * 2 - 1
    captions = [shapes.caption(s) for s in shapes.all_specs()]
    cond_table = model.condition(captions + [""])  # frozen encoder: embed the 577 prompts once
    caption_index = torch.tensor([shapes.all_specs().index(s) for s in specs]).to(device)
    ema = copy.deepcopy(model.denoiser).requires_grad_(False)
    opt = torch.optim.Adam(model.denoiser.parameters(), lr=recipe.lr)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / recipe.warmup) * 0.5 * (1 + math.cos(math.pi * min(s, recipe.steps) / recipe.steps))
    )
    gen = torch.Generator().manual_seed(recipe.seed)
    model.denoiser.train()
    for step in range(recipe.steps):
        idx = torch.randint(0, len(specs), (recipe.batch_size,), generator=gen).to(device)
        ci = caption_index[idx].clone()
        ci[(torch.rand(len(idx), generator=gen) < recipe.p_uncond).to(device)] = len(captions)
        loss = simple_loss(model, x[idx], cond_table[ci], gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        ema_update(ema, model.denoiser, recipe.ema_decay)
        if progress is not None:
            progress(step, float(loss.detach()))
    model.denoiser = ema.requires_grad_(True).train()
    return model


def sample_quality(model: TextToImageModel, judge: MiniClipJudge, per_spec: int = 1, steps: int = 20, guidance: float = 1.5) -> dict:
    """How often the judge recognises the requested shape / colour / background / style in samples."""
    from tasks.mini.shapes_clip import zero_shot_accuracy

    specs = [s for s in shapes.all_specs() for _ in range(per_spec)]
    images = model.sample([shapes.caption(s) for s in specs], seeds_for(len(specs), SHAPES_QUALITY_SEED),
                          steps=steps, guidance=guidance, batch_size=256)
    return {k: round(v, 4) for k, v in zero_shot_accuracy(judge, specs, images).items()}


@register_pretrain("mini-shapes")
def pretrain_mini_shapes(out: str | None = None, device: str = "cpu", steps: int | None = None) -> dict:
    out = Path(out or MODEL_DIR)
    recipe = MINI_SHAPES_RECIPE if steps is None else ShapesDiffusionRecipe(**{**MINI_SHAPES_RECIPE.to_dict(), "steps": steps})
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    encoder = load_shapes_encoder(device=device)
    t0 = time.time()
    model = train_shapes_model(recipe, encoder, device=device)
    seconds = time.time() - t0
    if out.exists():
        shutil.rmtree(out)
    model.save(out)
    reloaded = TextToImageModel.load(out, device=device)
    quality = sample_quality(reloaded, load_shapes_judge())
    n_params = sum(p.numel() for p in model.denoiser.parameters())
    return _write_recipe(
        out,
        {**recipe.to_dict(), "text_encoder": "mini-shapes-clip-encoder (tasks/mini/checkpoints/mini-shapes-text-encoder)",
         "data": "tasks/mini/shapes.py: all 576 attribute combinations, canonical captions"},
        {"seconds": round(seconds, 1), "device": str(device), "unet_parameters": n_params,
         "judge_accuracy_on_samples_ddim20_g1.5": quality},
    )


def require(path: Path, what: str, command: str) -> Path:
    if not Path(path).exists():
        raise MissingWeightsError(f"{what} missing at {path}; recreate it with `unlearn-bench pretrain {command}`")
    return Path(path)
