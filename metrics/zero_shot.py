"""UA by CLIP zero-shot classification (Van Gogh: which artist's style is this image?)."""
from __future__ import annotations

import torch

from bench.core.instances import PerInstance, instance_ids
from metrics.base import Metric, generated, register_metric


def zero_shot_predict(image_emb: torch.Tensor, label_emb: torch.Tensor) -> torch.Tensor:
    """Index of the most similar label embedding per image (embeddings L2-normalised)."""
    return (image_emb.float() @ label_emb.float().T).argmax(1)


def misses_target(judge, zs, images01: torch.Tensor) -> torch.Tensor:
    """Per image: 1.0 when the zero-shot judge does NOT name the erased target, else 0.0 (UA's rule)."""
    return (zero_shot_predict(judge.encode_images(images01), judge.encode_texts(zs.labels)) != zs.target).float()


@register_metric
class ZeroShotUA(Metric):
    """UA = share of forget-prompt images NOT classified as the target by the judge.

    Task supplies `evaluation.zero_shot = {"labels": [texts], "target": index, "what": "artist"}`
    and `evaluation.clip_judge`; the forget eval set holds the concept prompts.
    """

    name = "zero-shot-ua"
    requires = ("clip_judge", "zero_shot", "eval_sets:forget")

    def columns(self, inst):
        zs = inst.evaluation.zero_shot
        n = len(inst.evaluation.eval_sets["forget"][0])
        return {f"UA ({inst.evaluation.clip_judge.name} zero-shot, {len(zs.labels)} {zs.what}, n={n})": "↑"}

    def compute(self, inst, unlearned, original, ctx):
        judge, zs = inst.evaluation.clip_judge, inst.evaluation.zero_shot
        (col,) = self.columns(inst)
        prompts, seeds = inst.evaluation.eval_sets["forget"]
        misses = misses_target(judge, zs, generated(inst, unlearned, "forget", ctx))
        return {col: PerInstance.of("forget", instance_ids(prompts, seeds), misses.tolist())}
