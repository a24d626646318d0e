"""The Fréchet distance maths every FID column shares (clean-fid's formula and batch helper): features
of a batch, their statistics, and the distance to reference features or statistics."""
from __future__ import annotations

import numpy as np
import torch
from cleanfid import fid as cleanfid

from bench.core.errors import ConfigError


def batch_features(extractor, images01: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Features via clean-fid's batch helper (the extractor takes images in [0, 1])."""
    device = next(extractor.parameters()).device if hasattr(extractor, "parameters") else torch.device("cpu")
    feats = [cleanfid.get_batch_features(images01[i : i + batch_size], extractor, device) for i in range(0, len(images01), batch_size)]
    return np.concatenate(feats)


def stats_of(features: np.ndarray) -> dict:
    return {"mu": np.mean(features, axis=0), "sigma": np.cov(features, rowvar=False)}


def fid_against_stats(gen_features: np.ndarray, ref: dict) -> float:
    """Fréchet distance of generated features to reference mean/covariance (clean-fid's formula)."""
    mu, sigma = np.mean(gen_features, axis=0), np.cov(gen_features, rowvar=False)
    if mu.shape != np.shape(ref["mu"]):
        raise ConfigError(f"FID reference has {np.shape(ref['mu'])[0]}-d statistics but the network gives {mu.shape[0]}-d features")
    return float(cleanfid.frechet_distance(mu, sigma, ref["mu"], ref["sigma"]))


def fid_from_features(gen_feats: np.ndarray, ref_feats: np.ndarray | dict) -> float:
    """`ref_feats`: reference features, or precomputed statistics {"mu", "sigma"} (clean-fid's format)."""
    if isinstance(ref_feats, dict):
        return fid_against_stats(gen_feats, ref_feats)
    return float(cleanfid.fid_from_feats(gen_feats, ref_feats))
