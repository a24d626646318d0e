"""Relearning: does a little fine-tuning on the forgotten concept bring it back?

After unlearning, a COPY of the unlearned model is fine-tuned with L_simple on k forget examples
(the task's D_f, a fixed draw) for s Adam steps, and the task's own UA judge (the classifier on
class tasks, the zero-shot judge on concept/style tasks) is asked again after each checkpoint
step. The copy is evaluation-only: it is made after every other metric has its images, and the
unlearned model itself is never touched (arXiv 2410.08074 and 2505.16174 study this attack; no
benchmark harness runs it).

Columns (their settings in the name):
  UA-relearn        ↑  UA after s steps;
  relearn-recovered ↓  the share of the forgetting undone after s steps,
                       clip((UA_0 − UA_s) / (UA_0 − UA_orig), 0, 1), UA_0 the unlearned model's UA and
                       UA_orig Original's on the same images; 0 when nothing was forgotten (UA_0 ≤ UA_orig);
  relearn-half-steps ↑ the first checkpoint step at which half of the forgetting is undone; 2·s when
                       that does not happen within the budget; 0 when nothing was forgotten.
A model that truly never learned the concept (Retrain, on class tasks) relearns no faster than its
training from scratch would; one that only hides the concept behind its condition relearns fast.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from bench.core.denoising import simple_loss
from metrics.base import Metric, generated, register_metric, sample_set
from metrics.classification import correct_classes
from metrics.zero_shot import misses_target


@dataclass(frozen=True)
class RelearnSettings:
    """The relearning budget, the same for every method on a task (PROTOCOL.md, Metrics)."""

    examples: int = 8  # k forget examples, drawn once with `seed`
    steps: int = 40  # s Adam steps, one full batch of the k examples each
    lr: float = 1e-4
    checkpoints: tuple[int, ...] = (5, 10, 20, 40)  # steps at which UA is measured again (the last is s)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.examples < 1 or self.steps < 1 or self.lr <= 0:
            raise ValueError("relearn: examples and steps must be ≥ 1 and lr > 0")
        if not self.checkpoints or list(self.checkpoints) != sorted(set(self.checkpoints)) or self.checkpoints[-1] != self.steps \
                or self.checkpoints[0] < 1:
            raise ValueError("relearn: checkpoints must be increasing steps in 1..steps, ending at steps")


MINI_SETTINGS = RelearnSettings()  # the mini world: 8 examples, 40 steps at 1e-4 (its methods' tuned lr scale)
SD_SETTINGS = RelearnSettings(examples=8, steps=40, lr=1e-5, checkpoints=(10, 20, 40))  # the SD references' lr


def settings_for(inst) -> RelearnSettings:
    s = inst.evaluation.relearn_settings
    if s is not None:
        return s
    return MINI_SETTINGS if inst.task.name.startswith("mini-") else SD_SETTINGS


def judge_name(ev) -> str:
    """The task's UA judge, for column names: its classifier's name, else its CLIP judge's."""
    return ev.classifier_name or (ev.clip_judge.name if ev.clip_judge else "judge")


def ua_of(ev, images01: torch.Tensor, classes, zero_shot) -> float:
    """UA's one rule by the task's own judge: 1 − the classifier's accuracy on the `classes` the images were asked
    for (class tasks), else the share of images the zero-shot judge does not name as `zero_shot`'s target."""
    if ev.classifier is not None:
        return float((1 - correct_classes(ev.classifier, images01, classes)).mean())
    return float(misses_target(ev.clip_judge, zero_shot, images01).mean())


def forget_ua(inst, images01: torch.Tensor) -> float:
    """UA of forget-set images of the target."""
    ev = inst.evaluation
    return ua_of(ev, images01, ev.eval_sets["forget"][0], ev.zero_shot)


def recovered(ua0: float, ua: float, ua_orig: float) -> float:
    """Share of the forgetting (UA_0 − UA_orig) undone at UA, in [0, 1]; 0 when nothing was forgotten."""
    room = ua0 - ua_orig
    if room <= 0:
        return 0.0
    return min(1.0, max(0.0, (ua0 - ua) / room))


def half_steps(curve: list[tuple[int, float]], steps: int) -> float:
    """First checkpoint step whose recovered share is ≥ ½; 2·steps when none is (`curve`: (step, share))."""
    return float(next((s for s, r in curve if r >= 0.5), 2 * steps))


@register_metric
class Relearn(Metric):
    """UA after fine-tuning a copy of the unlearned model on k forget examples (task option `relearn`)."""

    name = "relearn"
    requires = ("classifier|zero_shot", "eval_sets:forget")

    def columns(self, inst):
        s = settings_for(inst)
        what = f"{judge_name(inst.evaluation)}, {s.examples} ex. × {s.steps} steps, lr {s.lr:g}"
        return {f"UA-relearn ({what})": "↑", f"relearn-recovered ({what})": "↓", f"relearn-half-steps ({what})": "↑"}

    def compute(self, inst, unlearned, original, ctx):
        s = settings_for(inst)
        ua_col, rec_col, half_col = self.columns(inst)
        keys, seeds = inst.evaluation.eval_sets["forget"]
        ua0 = forget_ua(inst, generated(inst, unlearned, "forget", ctx))
        ua_orig = forget_ua(inst, generated(inst, original, "forget", ctx))
        data = inst.forget
        g = torch.Generator().manual_seed(s.seed)
        idx = torch.randperm(len(data), generator=g)[: s.examples]
        batch = data.subset(idx.tolist())
        model = unlearned.trainable_copy()  # evaluation-only: the unlearned model is left as it is
        params = [p for p in model.denoiser.parameters() if p.requires_grad]
        opt = torch.optim.Adam(params, lr=s.lr)
        cond = model.condition(batch.keys)
        curve, ua = [], ua0
        for step in range(1, s.steps + 1):
            loss = simple_loss(model, batch.x, cond, g)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if step in s.checkpoints:
                images = sample_set(model, list(keys), list(seeds), inst.evaluation.sampler,  # not cached: the copy keeps changing
                                    inst.evaluation.eval_guidance.get("forget"))
                ctx.images_generated += len(keys)
                ua = forget_ua(inst, images)
                curve.append((step, recovered(ua0, ua, ua_orig)))
        nothing = ua0 <= ua_orig
        return {ua_col: ua, rec_col: curve[-1][1], half_col: 0.0 if nothing else half_steps(curve, s.steps)}
