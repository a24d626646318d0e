"""Retrain: train from scratch without the forget class, by the recipe that built the base model.

The gold reference of class unlearning (what a model that never saw the class does). It runs the
task's own pretrain recipe (`remain.meta["pretrain_recipe"]`) on the remain data, with the
recipe's seed offset by the job seed, and copies the resulting EMA weights into the model.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from bench.core.errors import ConfigError
from methods.base import Method, register_method


@dataclass
class RetrainHParams:
    steps: int | None = None  # None: the pretrain recipe's own step count


@register_method
class Retrain(Method):
    """Train from scratch on the remain data with the base model's pretrain recipe (class tasks)."""

    name = "retrain"
    HParams = RetrainHParams
    task_kinds = ("class",)

    def unlearn(self, model, forget, remain, budget, ctx):
        from bench.core.class_training import train_class_conditional

        recipe = remain.meta.get("pretrain_recipe")
        if recipe is None or remain.groups is None:
            raise ConfigError("retrain needs a class task whose remain set carries its pretrain recipe and labels")
        steps = budget.steps(self.hparams.steps or recipe.steps)
        recipe = replace(recipe, steps=steps, seed=recipe.seed + ctx.seed)
        on_gpu = torch.device(ctx.device).type == "cuda"
        retrained = train_class_conditional(
            recipe, remain.x, remain.groups, model.class_names, device=ctx.device,
            progress=lambda step, loss: ctx.step(loss),
            autocast_dtype=torch.bfloat16 if on_gpu else None,  # as the pretrain recipe trains on GPU
        )
        model.denoiser.load_state_dict(retrained.denoiser.state_dict())
        return {"autocast": "bf16" if on_gpu else "fp32", "recipe_steps": steps, "train_examples": len(remain), "recipe_seed": recipe.seed}
