"""`run --rehearse`: every job of a suite, end to end, on tiny random models, on the machine at hand.

A rehearsal runs the suite's own job list through the ordinary harness (plan, Ray, method processes and their
sandbox, isolated evaluation, records, voucher, leaderboard) with the suite's prompt sets, data splits and
option values. What it replaces is what a GPU and the weights would give:

- the weights: Stable Diffusion v1.4 by a tiny SD-shaped pipeline of the same families (UNet2DConditionModel at
  0.2M parameters, CLIPTextModel, AutoencoderKL), the CIFAR-10 DDPM by the `rehearsal` preset of its own recipe (the same UNet2DModel
  family at 12k parameters, trained 4 steps on the stand-in data by `pretrain cifar10`), the open_clip ViT-B/32 judge by a 1-layer ViT, clean-fid's Inception by a
  torchscript network with the same `layers` entry point; each built from configs (random_models.py) and read
  through the loaders real checkpoints go through. NudeNet's detector ships in its wheel and runs as it is;
- the data: CIFAR-10 by a stand-in of its format and size (cifar-10-batches-py, 50,000 + 10,000 images of
  random pixels with a colour per class), read by torchvision's reader against the stand-in's own checksums;
- the cost: every method's real code runs for REHEARSAL_STEPS optimiser steps (the suite's budget cap), and every
  metric is computed on a few images per evaluation set, sampled with SAMPLE_STEPS DDIM steps
  (`REHEARSAL_OPTIONS`: evaluation-size and sampler options only, never the prompt sets or the splits).

The world is built once into the suite's cache (`world_root()`), deterministically. Every record says
`rehearsal: true` (part of its setting hash) and the leaderboard opens with a banner: these are not results.

A world has a size (`StandIns`): `TINY`, the rehearsal's, and `FULL`, the GPU check's (benchmarks/gpu_check.py):
SD v1.4's own architecture at 512 px (configs kept in bench/core/adapters/configs/sd-v1-4/), the CIFAR-10 DDPM's
reference recipe (35.7M parameters; random weights, untrained) and an open_clip ViT-B/32, all random, with the same
data, Inception and FID stand-ins.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import nn

from bench.core.cache import cache_root
from bench.core.log import get_logger
from bench.runner.plan import Suite, TaskEntry

WORLD_VERSION = 2  # bump when a stand-in changes: a new world is built beside the old one (2: SD's skip_prk_steps)
REHEARSAL_STEPS = 2  # optimiser steps per method (the budget's max_steps)
SAMPLE_STEPS = 2  # DDIM steps of every image a rehearsal generates
REHEARSAL_TIMEOUT_S = 1800.0  # per job, unless the suite sets its own: a stand-in job that takes longer is stuck, not slow
CLIP_NAME = "rehearsal-tiny-clip"
CIFAR_TRAIN_BATCHES, CIFAR_PER_BATCH, CIFAR_TEST = 5, 10_000, 10_000  # CIFAR-10's own layout and size
FID_REFERENCE_IMAGES = 2_000  # stand-in train images behind the rehearsal's FID reference statistics

log = get_logger("rehearsal")


@dataclass(frozen=True)
class StandIns:
    """The sizes a world's models are built at. `sd`: a random_models config; `clip`: an open_clip config, or None for
    open_clip's own config of `clip_arch`; `cifar_preset`: the CIFAR-10 DDPM recipe's preset, pretrained a few steps on
    the stand-in data (`cifar_trained`) or left at random weights."""

    name: str
    sd: dict = field(hash=False)
    clip_name: str
    clip: dict | None = field(default=None, hash=False)
    clip_arch: str = ""
    cifar_preset: str = "rehearsal"
    cifar_trained: bool = True
    cifar_per_batch: int = CIFAR_PER_BATCH  # images per stand-in CIFAR-10 batch (CIFAR-10's 10,000)
    fid_images: int = FID_REFERENCE_IMAGES  # stand-in train images behind the FID reference statistics

    def clip_config(self) -> dict:
        if self.clip is not None:
            return self.clip
        import open_clip

        return open_clip.get_model_config(self.clip_arch)


def _standins() -> tuple[StandIns, StandIns]:
    from bench.core.adapters.random_models import REHEARSAL_SD, TINY_CLIP, sd14_config

    tiny = StandIns("tiny", REHEARSAL_SD, CLIP_NAME, TINY_CLIP)
    full = StandIns("sd14", sd14_config(), "stand-in-vit-b-32", None, "ViT-B-32", cifar_preset="reference", cifar_trained=False)
    return tiny, full


TINY, FULL = _standins()


@dataclass(frozen=True)
class World:
    """Where a rehearsal's stand-ins live, and their size."""

    root: Path
    size: StandIns = TINY

    @property
    def sd(self) -> Path:
        return self.root / "sd"

    @property
    def clip_name(self) -> str:
        return self.size.clip_name

    @property
    def clip_weights(self) -> Path:
        return self.root / "clip" / f"{self.clip_name}.pt"

    @property
    def inception(self) -> Path:
        return self.root / "inception" / "stand-in-inception.pt"

    @property
    def cifar(self) -> Path:
        return self.root / "cifar10"

    @property
    def cifar_model(self) -> Path:
        return self.root / "cifar10-ddpm"

    @property
    def fid_stats(self) -> Path:
        return self.root / "fid-stats" / "stand-in-train-stats.npz"


def world_root(size: StandIns = TINY) -> Path:
    return cache_root() / "rehearsal" / (f"world-v{WORLD_VERSION}" + ("" if size is TINY else f"-{size.name}"))


class StandInInception(nn.Module):
    """Stands in for clean-fid's torchscript Inception: the same `layers` entry point, 16-d features (a strided
    convolution and a pooling over the 299×299 input clean-fid's resize makes)."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(nn.Conv2d(3, 16, 23, stride=23), nn.ReLU(), nn.AdaptiveAvgPool2d(1))

    def forward(self, x):
        return self.layers(x).flatten(1)


def write_cifar_stand_in(root: Path, seed: int = 0, per_batch: int = CIFAR_PER_BATCH) -> Path:
    """CIFAR-10's on-disk format and size (torchvision's cifar-10-batches-py: 5 train batches of 10,000 and a test batch,
    label names in batches.meta), random pixels around a colour per class; the marker file lists each file's md5 for
    torchvision's integrity check (tasks/cifar/data.py). `per_batch`: fewer images per batch (and in the test batch), a
    smaller stand-in of the same format (the CPU run of the GPU check). Returns the root torchvision reads."""
    from tasks.cifar.data import CIFAR10_CLASSES, STAND_IN_MARKER

    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    colours = np.array([[(37 * c) % 256, (91 * c) % 256, (173 * c) % 256] for c in range(10)], dtype=np.float32)

    def batch(name: str, n: int) -> None:
        labels = rng.integers(0, 10, n)
        noise = rng.normal(0.0, 40.0, (n, 3, 32, 32)).astype(np.float32)
        data = (colours[labels][:, :, None, None] + noise).clip(0, 255).astype(np.uint8).reshape(n, 3072)
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "labels": labels.tolist(), "data": data, "filenames": [f"{i}.png" for i in range(n)]}, f)

    for i in range(1, CIFAR_TRAIN_BATCHES + 1):
        batch(f"data_batch_{i}", per_batch)
    batch("test_batch", CIFAR_TEST * per_batch // CIFAR_PER_BATCH)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(CIFAR10_CLASSES), "num_cases_per_batch": per_batch, "num_vis": 3072}, f)
    md5 = {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.name != STAND_IN_MARKER}
    (folder / STAND_IN_MARKER).write_text(json.dumps({
        "about": "a stand-in for CIFAR-10 written by unlearn-bench's rehearsal: the same format and size, random pixels; "
                 "never results", "md5": md5}, indent=1))
    return Path(root)


def _piece(path: Path, make) -> None:
    """Build one stand-in into a temporary sibling and move it into place: a half-built piece is never used."""
    if path.exists():
        return
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        make(tmp)
        try:
            tmp.rename(path)
        except OSError:  # another process built it first
            if not path.exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


PIECES = {"sd-nudity": ("sd", "clip"), "sd-vangogh": ("sd", "clip"),
          "cifar10-class": ("clip", "inception", "cifar10", "cifar10-ddpm", "fid-stats")}  # what each task's options point at


def ensure_world(root: Path | None = None, size: StandIns = TINY, timings: dict | None = None, tasks=None) -> World:
    """The stand-ins of `size` under `root` (default world_root(size)), each built once; `tasks` (default: all): only
    the pieces those tasks read (PIECES); `timings` (if given) gets the seconds each piece took (about 0 when it was
    there already)."""
    import time

    from bench.core.adapters.random_models import build_random_openclip, build_random_sd

    world = World(Path(root) if root else world_root(size), size)
    world.root.mkdir(parents=True, exist_ok=True)
    pieces = {
        "sd": (world.sd, lambda p: build_random_sd(p, size.sd, seed=0)),
        "clip": (world.clip_weights.parent, lambda p: build_random_openclip(p, world.clip_name, size.clip_config(), seed=0)),
        "inception": (world.inception.parent,
                      lambda p: (torch.manual_seed(0), torch.jit.script(StandInInception()).save(str(p / world.inception.name)))),
        "cifar10": (world.cifar, lambda p: write_cifar_stand_in(p, seed=0, per_batch=size.cifar_per_batch)),
        "cifar10-ddpm": (world.cifar_model, lambda p: _cifar_model(p, world)),
        "fid-stats": (world.fid_stats.parent, lambda p: _reference_stats(p / world.fid_stats.name, world, size.fid_images)),
    }
    wanted = None if tasks is None else {p for t in tasks for p in PIECES.get(t, ())}
    for name, (path, make) in pieces.items():
        if wanted is not None and name not in wanted:
            continue
        t0 = time.perf_counter()
        _piece(path, make)
        if timings is not None:
            timings[name] = round(time.perf_counter() - t0, 2)
    return world


def _reference_stats(out: Path, world: World, images: int = FID_REFERENCE_IMAGES) -> None:
    """FID's reference statistics for the stand-in (mu, sigma: clean-fid's .npz format) from its first `images` train
    images through the stand-in Inception, by the suite's own feature code. The real task computes them once from all
    50,000 (about 3 CPU minutes of clean-fid's resize); a rehearsal gives them as the task option fid_stats, the path of
    a user with clean-fid's precomputed statistics."""
    from metrics.frechet import batch_features, stats_of
    from metrics.inception_fid import CleanInception
    from tasks.cifar.data import load_cifar10

    train = load_cifar10(str(world.cifar), True)
    extractor = CleanInception(world.inception)
    feats = np.concatenate([batch_features(extractor, train.unit(torch.arange(i, min(i + 250, images)))) for i in range(0, images, 250)])
    np.savez(out, **stats_of(feats))


def _cifar_model(out: Path, world: World) -> None:
    """The CIFAR-10 base model's own recipe at the world's preset: trained its few steps on the stand-in data (same code
    as `unlearn-bench pretrain cifar10`), or, at full size, random weights saved as `pretrain` saves them."""
    from tasks.cifar.data import CIFAR10_CLASSES
    from tasks.cifar.models import preset_recipe
    from tasks.cifar10 import pretrain_cifar10

    if not world.size.cifar_trained:
        from bench.core.adapters.random_models import build_random_class_model

        build_random_class_model(out, preset_recipe(world.size.cifar_preset), CIFAR10_CLASSES)
        return
    pretrain_cifar10(out=str(out), data_root=str(world.cifar), preset=world.size.cifar_preset, checkpoint_every=10**9)
    shutil.rmtree(out / "train-state", ignore_errors=True)


def rehearsal_options(task_cls, world: World) -> dict:
    """The options a rehearsal gives a task: its stand-in weights and data, a few evaluation images, SAMPLE_STEPS.
    Tasks that ship their own small models (the mini world) keep them."""
    from tasks.cifar10 import Cifar10Class
    from tasks.stable_diffusion import StableDiffusionTask

    clip = {"clip_model": world.clip_name, "clip_pretrained": "rehearsal-random", "clip_weights": str(world.clip_weights)}
    if issubclass(task_cls, StableDiffusionTask):
        return {"model": str(world.sd), **clip, "sample_steps": SAMPLE_STEPS, "eval_images": 2, "batch_size": 64}
    if issubclass(task_cls, Cifar10Class):
        return {"data_root": str(world.cifar), "base_model": str(world.cifar_model), "inception_weights": str(world.inception),
                "fid_stats": str(world.fid_stats), "classifier": "clip", **clip, "forget_samples": 4, "remain_samples_per_class": 2,
                "sample_steps": SAMPLE_STEPS}
    return {}


def rehearse_suite(suite: Suite, world: World, extra_tasks=()) -> Suite:
    """The suite as a rehearsal runs it: the same tasks, targets, seeds, rows and option values, plus each task's
    rehearsal options, every method capped at REHEARSAL_STEPS optimiser steps, and `rehearsal` set.
    `extra_tasks`: tasks named on the command line that the suite does not list (they get their options too)."""
    from tasks.base import TASKS

    tasks = []
    listed = {te.task for te in suite.tasks}
    for te in list(suite.tasks) + [TaskEntry(t) for t in extra_tasks if t not in listed]:
        extra = rehearsal_options(TASKS.get(te.task), world)
        seq = te.sequences and replace(te.sequences, options={**te.sequences.options, **extra})
        tasks.append(replace(te, options={**te.options, **extra}, sequences=seq))
    cap = suite.budget.get("max_steps")
    budget = {**suite.budget, "max_steps": REHEARSAL_STEPS if cap is None else min(cap, REHEARSAL_STEPS)}
    return replace(suite, tasks=tasks, budget=budget, rehearsal=True, timeout_s=suite.timeout_s or REHEARSAL_TIMEOUT_S)
