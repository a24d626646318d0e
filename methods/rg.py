"""RG: RGD's restricted update with the remain gradient of one minibatch (the paper's ablation row).

What the reference runs (CIFAR/training/training_loop.py, `unlearn_alg == 'RG'`): remain minibatches
cycled from the SAME class-balanced subset that RGD averages over (50 per remaining class), projected
and combined exactly as RGD. RGD − RG therefore isolates RGD's whole-subset remain gradient, and
RG − GradDiff isolates the restriction; the diversity ablation (a narrow remain set instead of the
balanced one) is its own row, `rgd` with `remain_sampling: narrow` (label `rgd-narrow`).

Class tasks only: on concept/style tasks the reference RGD (SD/train-scripts/nsfw_RGD.py) already
takes its remain gradient on the paired minibatch, so an RG row there would repeat RGD's update.
"""
from __future__ import annotations

from dataclasses import dataclass

from methods.base import register_method
from methods.rgd import RGD, RemainGradient, RGDHParams


@dataclass
class RGHParams(RGDHParams):
    remain_gradient: RemainGradient = "batch"


@register_method
class RG(RGD):
    """Restricted gradient with remain minibatches from RGD's balanced subset."""

    name = "rg"
    HParams = RGHParams
    defaults_by_kind = {}
    task_kinds = ("class",)
