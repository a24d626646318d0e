"""Sequential unlearning: does an earlier erasure survive the later ones? (UnlearnCanvas's sequential setting.)

In a sequence the model erases targets one after another, each step starting from the previous step's
unlearned weights (a sequence job, bench/runner/plan.py JobSpec.sequence). A later step is fine-tuned on D_r and the new target only, so nothing keeps it
from bringing back what an earlier step erased. UA-earlier asks the task's own UA judge again, on each
earlier target's forget evaluation set (its prompts or class, its seeds, as when it was the target):
the same rule as UA (metrics/relearn.ua_of), averaged over the earlier targets. Original still draws
them: its UA-earlier is its UA on those targets.
"""
from __future__ import annotations

from metrics.base import Metric, generated, register_metric
from metrics.relearn import judge_name, ua_of


def earlier_images(inst, model, earlier, ctx):
    """Images in [0, 1] of `model` on an earlier target's forget set (once per model and target)."""
    return generated(inst, model, f"earlier:{earlier.name}", ctx, earlier.eval_set)


def earlier_ua(ev, earlier, images01) -> float:
    """UA on one earlier target: its class (class tasks) or its zero-shot label (text tasks) by the task's judge."""
    classes = None if earlier.class_id is None else [earlier.class_id] * len(images01)
    return ua_of(ev, images01, classes, earlier.zero_shot)


@register_metric
class EarlierUA(Metric):
    """Mean UA over the targets a sequence erased before this one (sequence jobs; the harness adds it)."""

    name = "earlier-ua"
    requires = ("earlier",)

    def columns(self, inst):
        return {f"UA-earlier ({judge_name(inst.evaluation)})": "↑"}

    def compute(self, inst, unlearned, original, ctx):
        ev = inst.evaluation
        (col,) = self.columns(inst)
        uas = [earlier_ua(ev, e, earlier_images(inst, unlearned, e, ctx)) for e in ev.earlier]
        return {col: sum(uas) / len(uas)}
