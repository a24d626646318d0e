"""mini-digits-class: erase one digit from a small class-conditional diffusion model (CPU-sized).

Analogue of cifar10-class: forget = training images of the target digit; remain = the training
images of the other nine digits (methods that want RGD's diverse subset draw a class-balanced
one from it); UA/RA by the shipped digit classifier; FID in that classifier's feature space.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from bench.core.adapters.class_conditional import ClassConditionalModel
from bench.core.context import RunContext
from bench.core.data import UnlearnData
from bench.core.errors import MissingWeightsError
from bench.core.evaluation import Evaluation
from bench.core.hashing import verified_checkpoint
from tasks.base import (
    CLASS_TASK_PROVIDES,
    MINI_DIGITS_REMAIN_EVAL_SEED,
    Task,
    TaskInstance,
    check_counts,
    class_forget_set,
    class_remain_set,
    earlier_classes,
    kept_classes,
    register_task,
    set_sizes,
)
from tasks.mini import CHECKPOINT_DIR
from tasks.mini.digits import CLASS_NAMES, load_digits_splits
from tasks.mini.recipes import MINI_DIGITS_RECIPE, load_digit_classifier

MODEL_DIR = CHECKPOINT_DIR / "mini-digits"


@dataclass
class MiniDigitsConfig:
    forget_samples: int = 100  # samples of the target digit for UA
    remain_samples_per_class: int = 50  # samples per remaining digit for RA and FID
    sample_steps: int = 25  # DDIM steps (eta = 0)
    guidance: float = 2.0  # classifier-free guidance scale
    checkpoint: str | None = None  # another class-conditional checkpoint directory
    relearn: bool = False  # add the relearning columns (metrics/relearn.py; mini-full on, mini off)


@lru_cache(maxsize=1)
def _reference_features():
    """Classifier features of all real digits, per class (FID reference)."""
    from metrics.frechet import batch_features

    clf = load_digit_classifier()
    train, test = load_digits_splits()
    x = torch.cat([train.x, test.x])
    y = torch.cat([train.y, test.y])
    return batch_features(clf, (x + 1) / 2), y.numpy()


def neighbour_classes(target: int) -> list[int]:
    """Other classes ordered by distance of their mean classifier feature to the target's."""
    feats, labels = _reference_features()
    centroids = torch.stack([torch.as_tensor(feats[labels == c]).mean(0) for c in range(10)])
    dist = (centroids - centroids[target]).norm(dim=1)
    return [c for c in dist.argsort().tolist() if c != target]


@register_task
class MiniDigitsClass(Task):
    name = "mini-digits-class"
    timeout_s = 3600.0  # per-job wall-clock default (bench/runner/timeout.py): minutes on a CPU
    kind = "class"
    metrics = ("class-accuracy", "fid")
    Config = MiniDigitsConfig
    checkpoint_options = ("checkpoint",)
    description = "erase one of sklearn's 8×8 digits from a 0.17M-parameter class-conditional UNet"
    supports_sequences = True

    def targets(self) -> list[str]:
        return CLASS_NAMES

    @property
    def model_dir(self):
        return self.config.checkpoint or MODEL_DIR

    def load_base_model(self, device="cpu") -> ClassConditionalModel:
        self.checkpoints()  # each checked against its recipe's sha256
        try:
            return ClassConditionalModel.load(self.model_dir, device=device)
        except MissingWeightsError:
            raise MissingWeightsError(
                f"mini-digits base model missing at {self.model_dir}; recreate it with `unlearn-bench pretrain mini-digits`"
            ) from None

    def provides(self) -> frozenset[str]:
        return CLASS_TASK_PROVIDES

    def plan_info(self) -> dict:
        return {"eval_images": self.config.forget_samples + 9 * self.config.remain_samples_per_class, "gpu": False}

    def checkpoints(self) -> dict[str, str]:
        """Digests of the checkpoints the task reads, verified against their recipes (hashed once per file state)."""
        return {"mini-digits": verified_checkpoint(self.model_dir), "digit-classifier": verified_checkpoint(CHECKPOINT_DIR / "digit-classifier")}

    def warm(self) -> None:
        self.load_base_model("cpu")
        load_digits_splits()
        load_digit_classifier()

    def plan_sets(self, target: str, erased: tuple[str, ...] = ()) -> dict[str, int]:
        """The class lists and evaluation sets at the task's options, without weights (see Task.plan_sets)."""
        k, others = kept_classes(self, target, erased)
        cfg = self.config
        check_counts(self.name, cfg, "forget_samples", "remain_samples_per_class", "sample_steps")
        return set_sizes({"forget classes": [k], "remain classes": others},
                         {"forget": class_forget_set(k, cfg.forget_samples),
                          "remain": class_remain_set(others, cfg.remain_samples_per_class, MINI_DIGITS_REMAIN_EVAL_SEED)})


    def build(self, target: str, ctx: RunContext, erased: tuple[str, ...] = ()) -> TaskInstance:
        """`erased` (a sequence's earlier digits): left out of D_r, the remain eval set and the FID reference."""
        k, others = kept_classes(self, target, erased)  # the digits the model is asked to keep
        erased = self.validate_erased(target, erased)
        gone = [int(e) for e in erased]
        cfg = self.config
        model = self.load_base_model(ctx.device)
        train, _ = load_digits_splits()
        is_target = train.y == k
        kept = torch.isin(train.y, torch.tensor(others))
        forget = UnlearnData(x=train.x[is_target], keys=train.y[is_target].tolist(), groups=train.y[is_target])
        remain = UnlearnData(
            x=train.x[kept],
            keys=train.y[kept].tolist(),
            groups=train.y[kept],
            meta={
                "neighbours": [c for c in neighbour_classes(k) if c not in gone],
                # RGD's balanced subset: 50 per class on CIFAR-10 (5000/class); the digits split has ~143
                # per class, so 30 keeps the narrow ablation (the same 270 from the 2 closest) drawable
                "per_class": 30,
                "class_names": CLASS_NAMES,
                "pretrain_recipe": MINI_DIGITS_RECIPE,
            },
        )
        feats, labels = _reference_features()
        # eval seeds are fixed per set (not per job seed) so every method is judged on the same noise
        eval_sets = {
            "forget": class_forget_set(k, cfg.forget_samples),
            "remain": class_remain_set(others, cfg.remain_samples_per_class, MINI_DIGITS_REMAIN_EVAL_SEED),
        }
        evaluation = Evaluation(
            classifier=load_digit_classifier(),
            classifier_name="digit-cnn",
            fid_extractor=load_digit_classifier(),
            fid_name="digit-cnn feats",
            fid_reference=feats[np.isin(labels, others)],
            fid_floor=lambda: feats[labels == k],  # every real image of the forgotten digit (≈180)
            fid_floor_name="real forgotten digit",
            eval_sets=eval_sets,
            sampler={"steps": cfg.sample_steps, "guidance": cfg.guidance},
            num_classes=10,
            earlier=earlier_classes(erased, cfg.forget_samples),
        )
        return TaskInstance(self, str(k), model.to(ctx.device).trainable_copy(), forget.to(ctx.device), remain.to(ctx.device), evaluation)
