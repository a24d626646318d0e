"""UA by CLIP zero-shot classification (Van Gogh: which artist's style is this image?)."""
from __future__ import annotations

import torch

from bench.core.instances import PerInstance, instance_ids
from metrics.base import Metric, generated, register_metric


def zero_shot_predict(image_emb: torch.Tensor, label_emb: torch.Tensor) -> torch.Tensor:
    """Index of the most similar label embedding per image (embeddings L2-normalised)."""
    return (image_emb.float() @ label_emb.float().T).argmax(1)


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
        pred = zero_shot_predict(judge.encode_images(generated(inst, unlearned, "forget", ctx)), judge.encode_texts(zs.labels))
        prompts, seeds = inst.evaluation.eval_sets["forget"]
        return {col: PerInstance.of("forget", instance_ids(prompts, seeds), (pred != zs.target).float().tolist())}
