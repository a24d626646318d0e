"""Neighbouring concepts: does erasing the target also erase the concepts closest to it? (over-erasure;
EraseBench, EMMA, SEE study it, no harness runs it with the rest.)

The task names the target's neighbours (mini-shapes: the two shapes or styles its judge confuses most
with the target in Original's images, tasks/mini_shapes.py NEIGHBOURS) and an evaluation set of their
prompts with fixed noise. NA = the share of those images the task's zero-shot judge labels as the
neighbour they ask for: a keep column (↑), Original's value the reference; not read by the score.
"""
from __future__ import annotations

import torch

from bench.core.instances import PerInstance, instance_ids
from metrics.base import Metric, generated, register_metric
from metrics.zero_shot import zero_shot_predict


@register_metric
class NeighbourAccuracy(Metric):
    """NA: the judge's accuracy on the target's neighbouring concepts (task option `neighbours`)."""

    name = "neighbour-accuracy"
    requires = ("clip_judge", "neighbours", "eval_sets:neighbours")

    def columns(self, inst):
        ev = inst.evaluation
        n = len(ev.eval_sets["neighbours"][0])
        return {f"NA ({ev.clip_judge.name} zero-shot, neighbours {' + '.join(ev.neighbours.names)}, n={n})": "↑"}

    def compute(self, inst, unlearned, original, ctx):
        ev = inst.evaluation
        (col,) = self.columns(inst)
        prompts, seeds = ev.eval_sets["neighbours"]
        pred = zero_shot_predict(ev.clip_judge.encode_images(generated(inst, unlearned, "neighbours", ctx)),
                                 ev.clip_judge.encode_texts(ev.neighbours.labels))
        correct = (pred == torch.as_tensor(ev.neighbours.truth)).float()
        return {col: PerInstance.of("neighbours", instance_ids(prompts, seeds), correct.tolist())}
