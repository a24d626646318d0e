"""Recipes for the mini world's committed checkpoints, and their loaders.

`unlearn-bench pretrain mini-digits` / `mini-digits-classifier` rebuild the files under
tasks/mini/checkpoints/ deterministically; `recipe.json` beside the weights records the recipe,
what it measured, and the SHA-256 of the weights.
"""
from __future__ import annotations

import json
import time
from functools import lru_cache
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from bench.core.class_training import ClassDiffusionRecipe, train_class_conditional
from bench.core.errors import MissingWeightsError
from bench.core.hashing import checkpoint_digest
from bench.core.pretrain import register_pretrain
from tasks.mini import CHECKPOINT_DIR
from tasks.mini.digits import CLASS_NAMES, DigitClassifier, digit_accuracy, load_digits_splits, train_digit_classifier

MINI_DIGITS_RECIPE = ClassDiffusionRecipe(
    unet=dict(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        block_out_channels=(16, 32),
        layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=8,
    ),
    scheduler=dict(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2"),
    steps=2000,
    batch_size=128,
    lr=2e-3,
    ema_decay=0.995,
    seed=0,
)


def _write_recipe(out: Path, recipe: dict, measured: dict) -> dict:
    summary = {"recipe": recipe, "measured": measured, "sha256": checkpoint_digest(out)}
    (out / "recipe.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


@register_pretrain("mini-digits-classifier")
def pretrain_digit_classifier(out: str | None = None, device: str = "cpu") -> dict:
    out = Path(out or CHECKPOINT_DIR / "digit-classifier")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    clf, acc = train_digit_classifier(seed=0)
    save_file(clf.state_dict(), str(out / "model.safetensors"))
    return _write_recipe(
        out,
        {"arch": "DigitClassifier", "epochs": 40, "lr": 2e-3, "batch_size": 64, "seed": 0, "augment": "±1 px shifts"},
        {"test_accuracy": acc, "seconds": round(time.time() - t0, 1)},
    )


@lru_cache(maxsize=4)
def load_digit_classifier(directory: str | None = None) -> DigitClassifier:
    path = Path(directory or CHECKPOINT_DIR / "digit-classifier") / "model.safetensors"
    if not path.exists():
        raise MissingWeightsError(f"digit classifier missing at {path}; recreate it with `unlearn-bench pretrain mini-digits-classifier`")
    clf = DigitClassifier()
    clf.load_state_dict(load_file(str(path)))
    return clf.eval().requires_grad_(False)


@register_pretrain("mini-digits")
def pretrain_mini_digits(out: str | None = None, device: str = "cpu", steps: int | None = None) -> dict:
    out = Path(out or CHECKPOINT_DIR / "mini-digits")
    recipe = MINI_DIGITS_RECIPE if steps is None else ClassDiffusionRecipe(**{**MINI_DIGITS_RECIPE.to_dict(), "steps": steps})
    train, _ = load_digits_splits()
    t0 = time.time()
    model = train_class_conditional(recipe, train.x, train.y, CLASS_NAMES, device=device)
    seconds = time.time() - t0
    model.save(out)
    # quality of the base model: how often the classifier recognises the requested digit
    keys = [i % 10 for i in range(500)]
    images = model.sample(keys, list(range(500)), steps=25, guidance=2.0)
    acc = digit_accuracy(load_digit_classifier(), images, torch.tensor(keys))
    return _write_recipe(
        out,
        {**recipe.to_dict(), "data": "sklearn digits, stratified 80% train split (seed 0)"},
        {"seconds": round(seconds, 1), "device": str(device), "sample_accuracy_ddim25_g2": acc},
    )
