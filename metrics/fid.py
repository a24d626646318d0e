"""FID through clean-fid: Fréchet distance of features of generated vs real images.

Mini tasks pass their own feature network as clean-fid's `custom_feat_extractor`; the paper task
uses clean-fid's Inception (2048-d) and its reference statistics.
"""
from __future__ import annotations

import numpy as np
import torch
from cleanfid import fid as cleanfid

from metrics.base import Metric, generated, register_metric


def batch_features(extractor, images01: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """Features via clean-fid's batch helper (the extractor takes images in [0, 1])."""
    device = next(extractor.parameters()).device if hasattr(extractor, "parameters") else torch.device("cpu")
    feats = [cleanfid.get_batch_features(images01[i : i + batch_size], extractor, device) for i in range(0, len(images01), batch_size)]
    return np.concatenate(feats)


def fid_from_features(gen_feats: np.ndarray, ref_feats: np.ndarray | dict) -> float:
    """`ref_feats`: reference features, or precomputed statistics {"mu", "sigma"} (clean-fid's format)."""
    if isinstance(ref_feats, dict):
        from metrics.inception_fid import fid_against_stats

        return fid_against_stats(gen_feats, ref_feats)
    return float(cleanfid.fid_from_feats(gen_feats, ref_feats))


@register_metric
class FID(Metric):
    """FID of remaining-class samples vs real images of those classes.

    Task supplies `info["fid_extractor"]` (nn.Module: images in [0,1] -> features),
    `info["fid_reference"]` (features of the real reference images) and `info["fid_name"]`.
    """

    name = "fid"

    def columns(self, inst):
        n = len(inst.info["eval_sets"]["remain"][0])
        return {f"FID ({inst.info['fid_name']}, n={n})": "↓"}

    def compute(self, inst, unlearned, original, ctx):
        (col,) = self.columns(inst)
        images = generated(inst, unlearned, "remain", ctx)
        return {col: fid_from_features(batch_features(inst.info["fid_extractor"], images), inst.info["fid_reference"])}
