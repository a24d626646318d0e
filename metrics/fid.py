"""FID through clean-fid: Fréchet distance of features of generated vs real images.

Mini tasks pass their own feature network as clean-fid's `custom_feat_extractor`; the paper task
uses clean-fid's Inception (2048-d) and its reference statistics.
"""
from __future__ import annotations

from metrics.base import Metric, generated, register_metric
from metrics.frechet import batch_features, fid_from_features


@register_metric
class FID(Metric):
    """FID of remaining-class samples vs real images of those classes.

    Task supplies `evaluation.fid_extractor` (nn.Module: images in [0,1] -> features),
    `evaluation.fid_reference` (features of the real reference images) and `evaluation.fid_name`.
    """

    name = "fid"
    requires = ("fid_extractor", "fid_reference", "fid_name", "eval_sets:remain")

    def columns(self, inst):
        n = len(inst.evaluation.eval_sets["remain"][0])
        return {f"FID ({inst.evaluation.fid_name}, n={n})": "↓"}

    def compute(self, inst, unlearned, original, ctx):
        (col,) = self.columns(inst)
        images = generated(inst, unlearned, "remain", ctx)
        return {col: fid_from_features(batch_features(inst.evaluation.fid_extractor, images), inst.evaluation.fid_reference)}
