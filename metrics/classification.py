"""UA and RA: a classifier judges samples conditioned on the forgotten / remaining classes."""
from __future__ import annotations

import torch

from bench.core.instances import PerInstance, instance_ids
from metrics.base import Metric, generated, register_metric


@torch.no_grad()
def predict(classifier, images01: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    out = [classifier(images01[i : i + batch_size]).argmax(1).cpu() for i in range(0, len(images01), batch_size)]
    return torch.cat(out)


def correct_classes(classifier, images01: torch.Tensor, keys) -> torch.Tensor:
    """Per image: 1.0 when the classifier names the class it was asked for (`keys`), else 0.0."""
    return (predict(classifier, images01) == torch.as_tensor([int(k) for k in keys])).float()


@register_metric
class ClassAccuracy(Metric):
    """UA = 1 − acc on forget-class samples; RA = acc on remaining-class samples.

    The task supplies `evaluation.classifier` (images in [0,1] -> logits; extra logits such as CLIP's
    "random noise" label simply count as wrong) and `evaluation.classifier_name` for the column name.
    """

    name = "class-accuracy"
    requires = ("classifier", "classifier_name", "eval_sets:forget", "eval_sets:remain")

    def columns(self, inst):
        clf = inst.evaluation.classifier_name
        return {f"UA ({clf})": "↑", f"RA ({clf})": "↑"}

    def compute(self, inst, unlearned, original, ctx):
        clf = inst.evaluation.classifier
        ua_col, ra_col = self.columns(inst)
        out = {}
        for which, col, invert in (("forget", ua_col, True), ("remain", ra_col, False)):
            keys, seeds = inst.evaluation.eval_sets[which]
            correct = correct_classes(clf, generated(inst, unlearned, which, ctx), keys)
            out[col] = PerInstance.of(which, instance_ids(keys, seeds, class_keys=True), (1 - correct if invert else correct).tolist())
        return out
