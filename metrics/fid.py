"""FID through clean-fid: Fréchet distance of features of generated vs real images.

Mini tasks pass their own feature network as clean-fid's `custom_feat_extractor`; the paper task
uses clean-fid's Inception (2048-d) and its reference statistics.
"""
from __future__ import annotations

import numpy as np

from metrics.base import Metric, generated, register_metric
from metrics.frechet import batch_features, fid_from_features


@register_metric
class FID(Metric):
    """FID of remaining-class samples vs real images of those classes.

    Task supplies `evaluation.fid_extractor` (nn.Module: images in [0,1] -> features),
    `evaluation.fid_reference` (features of the real reference images) and `evaluation.fid_name`;
    with `evaluation.fid_floor`, also the floor column the score's integrity term reads.
    """

    name = "fid"
    requires = ("fid_extractor", "fid_reference", "fid_name", "eval_sets:remain")

    def columns(self, inst):
        ev = inst.evaluation
        n = len(ev.eval_sets["remain"][0])
        out = {f"FID ({ev.fid_name}, n={n})": "↓"}
        if ev.fid_floor is not None:
            out[f"FID-floor ({ev.fid_name}, {ev.fid_floor_name or 'unrelated real images'})"] = "↓"
        return out

    def compute(self, inst, unlearned, original, ctx):
        col, *floor_col = self.columns(inst)
        images = generated(inst, unlearned, "remain", ctx)
        out = {col: fid_from_features(batch_features(inst.evaluation.fid_extractor, images), inst.evaluation.fid_reference)}
        if floor_col:
            out[floor_col[0]] = fid_floor(inst)
        return out


def fid_floor(inst) -> float:
    """The FID floor: real images unrelated to the remain classes (the task's `fid_floor`: on class tasks,
    the real images of the forgotten class) against the same reference. Remain samples this far from the
    reference are as far as images of another class: the score's K_i = 0 there (leaderboard/score.py)."""
    return fid_from_features(np.asarray(inst.evaluation.fid_floor()), inst.evaluation.fid_reference)
