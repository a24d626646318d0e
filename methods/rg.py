"""RG: RGD's restricted update without the diversified remain set (the paper's ablation row).

The remain gradient is a minibatch, as GradDiff takes it, from a remain subset of the same size
as RGD's but drawn uniformly (not class-balanced), instead of the whole class-balanced subset: RG − GradDiff isolates the restriction,
RGD − RG isolates the diversity. On concept/style tasks the task's D_r is itself built to be
diverse, so there RG differs from RGD only in that its remain gradient is not taken over the
whole set (with the SD defaults both use batches, and the rows coincide by construction).
"""
from __future__ import annotations

from dataclasses import dataclass

from methods.base import register_method
from methods.rgd import CONCEPT_DEFAULTS, RGD, RGDHParams, RemainGradient
from methods.remain_sampling import RemainSampling


@dataclass
class RGHParams(RGDHParams):
    remain_sampling: RemainSampling = "uniform"
    remain_gradient: RemainGradient = "batch"


@register_method
class RG(RGD):
    """Restricted gradient with plain remain minibatches (no diversity)."""

    name = "rg"
    HParams = RGHParams
    defaults_by_kind = {k: {**CONCEPT_DEFAULTS, "remain_sampling": "narrow"} for k in ("concept", "style")}
