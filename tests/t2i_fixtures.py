"""Tiny random models for the tests, built from configs through the product's builders
(bench/core/adapters/random_models.py) and saved in the layouts the loaders read."""
from __future__ import annotations

from pathlib import Path

from bench.core.adapters.random_models import build_random_openclip, build_random_sd


def build_tiny_sd(path: Path, seed: int = 0, latent: bool = True) -> Path:
    """Random tiny SD 1.x-shaped pipeline saved with save_pretrained in the SD layout."""
    return build_random_sd(path, seed=seed, latent=latent)


TINY_JUDGE = "tiny-test-clip"


def build_tiny_openclip(path: Path, seed: int = 0) -> Path:
    """A random open_clip model from a registered tiny config; its state dict saved to a local file."""
    return build_random_openclip(path, TINY_JUDGE, seed=seed)
