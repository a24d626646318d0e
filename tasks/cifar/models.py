"""CIFAR-10 models: the class-conditional DDPM recipe, a loader for any diffusers class-conditional
checkpoint, and the ResNet-34 UA/RA classifier (SalUn's protocol) with its training recipe.

Compute of the base model. The DDIM paper's CIFAR-10 model is DDPM's: a 35.7M-parameter UNet
(channels 128×(1,2,2,2), 2 res blocks per level, attention at 16×16, dropout 0.1), linear betas
1e-4..0.02 over 1000 steps, trained 800k steps at batch 128 (Adam 2e-4, 5k warm-up, EMA 0.9999,
gradient clipping 1, random horizontal flips). `CIFAR10_RECIPE` is that recipe plus a class
embedding with K+1 rows and 10% label dropout for classifier-free guidance. One forward pass is
12.4 GFLOPs per 32×32 image (`UNET_GFLOPS_PER_IMAGE`, counted by torch's FlopCounterMode on the meta
device), so a training step at batch 128 is ≈4.8 TFLOPs and 800k steps ≈3.8 EFLOPs: ≈11 H100 hours at an assumed
effective 100 TFLOP/s of bf16 (an estimate, not a measurement: no GPU was available when this was
written; `python benchmarks/cifar10_step_cost.py --device cuda` prints the real step time).
`unlearn-bench pretrain cifar10` runs the recipe with bf16 autocast on GPU and saves a resumable
training state every 5,000 steps (re-running the command resumes it).
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.core.adapters.class_conditional import ClassConditionalModel
from bench.core.class_training import ClassDiffusionRecipe
from bench.core.errors import ConfigError, MissingWeightsError

# DDPM / DDIM CIFAR-10 UNet (diffusers' google/ddpm-cifar10-32 layout): 35.7M parameters
CIFAR10_UNET = dict(
    sample_size=32,
    in_channels=3,
    out_channels=3,
    block_out_channels=(128, 256, 256, 256),
    layers_per_block=2,
    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=None,  # one head over all channels, as in DDPM
    dropout=0.1,
    downsample_padding=0,
    flip_sin_to_cos=False,
    freq_shift=1,
    norm_eps=1e-6,
    norm_num_groups=32,
)
CIFAR10_SCHEDULER = dict(num_train_timesteps=1000, beta_schedule="linear", beta_start=1e-4, beta_end=0.02)

CIFAR10_RECIPE = ClassDiffusionRecipe(
    unet=CIFAR10_UNET,
    scheduler=CIFAR10_SCHEDULER,
    steps=800_000,
    batch_size=128,
    lr=2e-4,
    p_uncond=0.1,
    ema_decay=0.9999,
    warmup=5000,
    seed=0,
    extra={"hflip": True, "grad_clip": 1.0, "lr_schedule": "constant", "data": "CIFAR-10 train (50k)", "autocast": "bf16 on GPU"},
)

# A CPU-sized model of the same layout (tests, smoke runs): same code paths, 3×32×32 data
TINY_UNET = dict(
    sample_size=32,
    in_channels=3,
    out_channels=3,
    block_out_channels=(8, 16),
    layers_per_block=1,
    down_block_types=("DownBlock2D", "AttnDownBlock2D"),
    up_block_types=("AttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=None,
    norm_num_groups=4,
)
TINY_RECIPE = ClassDiffusionRecipe(
    unet=TINY_UNET, scheduler=CIFAR10_SCHEDULER, steps=4, batch_size=4, lr=1e-3, warmup=2, ema_decay=0.9, seed=0,
    extra={"hflip": True, "grad_clip": 1.0, "lr_schedule": "constant"},
)
# The rehearsal's stand-in (bench/runner/rehearsal.py): the tiny layout at half the width, attention kept; a forward
# and backward at batch 128 takes ~0.46 s on one CPU core against the tiny preset's ~0.71 s, and a rehearsal makes
# thousands (SalUn's saliency pass over 5,000 forget images, RGD's remain gradient over 450 each step)
REHEARSAL_UNET = {**TINY_UNET, "block_out_channels": (4, 8), "norm_num_groups": 4}
REHEARSAL_RECIPE = replace(TINY_RECIPE, unet=REHEARSAL_UNET)
PRESETS = {"reference": CIFAR10_RECIPE, "tiny": TINY_RECIPE, "rehearsal": REHEARSAL_RECIPE}

# forward FLOPs of the reference UNet per 3×32×32 image (torch.utils.flop_counter on the meta device,
# where attention decomposes into counted matmuls; tests/test_cifar10.py re-counts it), used by the
# dry-run's GPU-hour estimate
UNET_GFLOPS_PER_IMAGE = 12.44


def preset_recipe(name: str) -> ClassDiffusionRecipe:
    if name not in PRESETS:
        raise ConfigError(f"unet_preset must be one of {', '.join(PRESETS)}, not {name!r}")
    return PRESETS[name]


def load_class_conditional(path: str | Path, class_names: Sequence[str], device="cpu") -> ClassConditionalModel:
    """A class-conditional checkpoint: this suite's layout, or any diffusers folder with unet/ + scheduler/.

    The UNet must have a class embedding with K+1 rows (row K = the null class for guidance).
    """
    path = Path(path).expanduser()
    if (path / "unlearn_bench.json").exists():
        model = ClassConditionalModel.load(path, device=device)
        if model.class_names != list(class_names):
            raise ConfigError(f"checkpoint {path} has classes {model.class_names}, expected {list(class_names)}")
        return model
    if not (path / "unet" / "config.json").exists():
        raise MissingWeightsError(f"class-conditional checkpoint not found at {path} (expected unet/ and scheduler/ folders)")
    from diffusers import DDPMScheduler, UNet2DModel

    unet = UNet2DModel.from_pretrained(path / "unet").to(device)
    sched = DDPMScheduler.from_pretrained(path / "scheduler") if (path / "scheduler").exists() else DDPMScheduler(**CIFAR10_SCHEDULER)
    try:
        return ClassConditionalModel(unet, sched, class_names)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def recipe_beside(path: str | Path) -> ClassDiffusionRecipe | None:
    """The recipe recorded by `unlearn-bench pretrain` next to a checkpoint, if any."""
    f = Path(path).expanduser() / "recipe.json"
    if not f.exists():
        return None
    raw = json.loads(f.read_text()).get("recipe", {})
    fields = set(ClassDiffusionRecipe.__dataclass_fields__)
    try:
        return ClassDiffusionRecipe(**{k: v for k, v in raw.items() if k in fields})
    except TypeError:
        return None


# -- ResNet-34 classifier ------------------------------------------------------------------------
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class CifarResNet34(nn.Module):
    """torchvision resnet34 for 32×32 inputs (3×3 stride-1 stem, no max-pool); takes images in [0, 1]."""

    name = "ResNet-34"

    def __init__(self, num_classes: int = 10):
        super().__init__()
        import torchvision

        net = torchvision.models.resnet34(num_classes=num_classes)
        net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        self.net = net
        self.register_buffer("mean", torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(CIFAR10_STD).view(1, 3, 1, 1))

    def features(self, images01: Tensor) -> Tensor:
        """Penultimate (global-average-pooled, 512-d) features."""
        n = self.net
        x = (images01.to(self.mean.device, self.mean.dtype) - self.mean) / self.std
        x = n.relu(n.bn1(n.conv1(x)))
        x = n.layer4(n.layer3(n.layer2(n.layer1(x))))
        return torch.flatten(n.avgpool(x), 1)

    def forward(self, images01: Tensor) -> Tensor:
        return self.net.fc(self.features(images01))


@dataclass
class ClassifierRecipe:
    """SalUn-style CIFAR-10 ResNet-34: SGD + momentum, cosine lr, random crop (pad 4) + flip."""

    epochs: int = 200
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def augment_crop_flip(x: Tensor, gen: torch.Generator, pad: int = 4) -> Tensor:
    """Per-example random crop from a zero-padded image and random horizontal flip (vectorised)."""
    b, _, h, w = x.shape
    xp = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(x.device)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen).to(x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    out = xp[torch.arange(b, device=x.device)[:, None, None, None], torch.arange(3, device=x.device)[None, :, None, None], rows, cols]
    flip = (torch.rand(b, generator=gen) < 0.5).to(x.device).view(-1, 1, 1, 1)
    return torch.where(flip, out.flip(-1), out)


def train_classifier(
    recipe: ClassifierRecipe, x01: Tensor, labels: Tensor, device="cpu", autocast_dtype: torch.dtype | None = None
) -> CifarResNet34:
    """Deterministic training (seeded init, batch order and augmentation)."""
    device = torch.device(device)
    torch.manual_seed(recipe.seed)
    model = CifarResNet34().to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay, nesterov=True)
    steps_per_epoch = math.ceil(len(x01) / recipe.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=recipe.epochs * steps_per_epoch)
    gen = torch.Generator().manual_seed(recipe.seed)
    x01, labels = x01.to(device), labels.to(device)
    for _ in range(recipe.epochs):
        perm = torch.randperm(len(x01), generator=gen).to(device)
        for i in range(0, len(x01), recipe.batch_size):
            idx = perm[i : i + recipe.batch_size]
            xb = augment_crop_flip(x01[idx], gen)
            with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
                loss = F.cross_entropy(model(xb), labels[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


@torch.no_grad()
def classifier_accuracy(model: nn.Module, x01: Tensor, labels: Tensor, batch_size: int = 500) -> float:
    dev = next(model.parameters()).device
    pred = torch.cat([model(x01[i : i + batch_size].to(dev)).argmax(1).cpu() for i in range(0, len(x01), batch_size)])
    return float((pred == labels.cpu()).float().mean())


def save_classifier(model: CifarResNet34, out: Path, summary: dict) -> None:
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(out / "model.safetensors"))
    (out / "recipe.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")


@lru_cache(maxsize=2)
def load_classifier(directory: str, device: str = "cpu") -> CifarResNet34:
    from safetensors.torch import load_file

    path = Path(directory).expanduser() / "model.safetensors"
    if not path.exists():
        raise MissingWeightsError(
            f"CIFAR-10 ResNet-34 classifier missing at {path}; train it with "
            f"`unlearn-bench pretrain cifar10-classifier --out {path.parent}` (or pass the task option classifier_dir)"
        )
    model = CifarResNet34()
    try:
        model.load_state_dict(load_file(str(path)))
    except RuntimeError as exc:
        raise MissingWeightsError(f"{path} is not a CIFAR-10 ResNet-34 checkpoint: {str(exc).splitlines()[0]}") from None
    return model.to(device).eval().requires_grad_(False)
