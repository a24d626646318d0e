"""cifar10-class: erase one CIFAR-10 class from a class-conditional DDPM (the papers' Table 1).

One job per class 0–9 (torchvision's label order, `CIFAR10_CLASSES`); the leaderboard averages
them. Methods get the target's 5,000 train images as `forget` and the FULL other 45,000 as
`remain` (x in [-1, 1]; keys = groups = labels), with `remain.meta`:
  per_class        RGD's balanced subset size per remaining class (50: 450 images, the reference)
  neighbours       remaining classes, closest to the target first: Euclidean distance between
                   class-mean features of the task's UA/RA classifier (CLIP image embeddings or the
                   ResNet-34's pooled features) over the first `neighbour_images_per_class` train
                   images of each class; RGD's `remain_sampling=narrow` takes the two closest
  class_names      torchvision's names
  pretrain_recipe  the ClassDiffusionRecipe that built the base model (Retrain re-runs it)
Evaluation: `forget_samples` images of the target and `remain_samples_per_class` of each other
class (DDIM, eta 0, classifier-free guidance), judged by CLIP ViT-B/32 zero-shot over the 10 class
prompts + "random noise" (RGD; a noise prediction counts as wrong) or the ResNet-34 (SalUn);
FID of the remain-class images against the CIFAR-10 train set with clean-fid's Inception.
Paper sizes: 5,000 + 9 × 5,000 = 50k images per job; quick: `forget_samples: 500,
remain_samples_per_class: 500`.

Everything is read offline: data from `data_root` (tasks/cifar/data.py), the base model from
`base_model` (default: where `unlearn-bench pretrain cifar10` writes), CLIP/Inception weights from
local files or caches; each missing piece is one clear error naming how to get it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.core.adapters.class_conditional import ClassConditionalModel
from bench.core.cache import cache_root, cached
from bench.core.class_training import ClassDiffusionRecipe, train_class_conditional
from bench.core.context import RunContext
from bench.core.data import UnlearnData
from bench.core.errors import MissingWeightsError
from bench.core.evaluation import Evaluation
from bench.core.fetch_registry import CIFAR10_ARTIFACT, INCEPTION_ARTIFACT, OPENCLIP_ARTIFACT, openclip_is_fetchable
from bench.core.hashing import checkpoint_digest, file_digest
from bench.core.log import get_logger
from bench.core.pretrain import register_pretrain
from tasks.base import (
    CIFAR10_REMAIN_EVAL_SEED,
    CLASS_TASK_PROVIDES,
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
from tasks.cifar.data import CIFAR10_CLASSES, is_stand_in, load_cifar10, resolve_data_root
from tasks.cifar.models import (
    UNET_GFLOPS_PER_IMAGE,
    ClassifierRecipe,
    classifier_accuracy,
    load_class_conditional,
    load_classifier,
    preset_recipe,
    recipe_beside,
    save_classifier,
    train_classifier,
)

CLASSIFIERS = ("clip", "resnet34")


def default_model_dir() -> Path:
    return cache_root() / "checkpoints" / "cifar10-ddpm"


def default_classifier_dir() -> Path:
    return cache_root() / "checkpoints" / "cifar10-resnet34"


@dataclass
class Cifar10Config:
    data_root: str | None = None  # holds cifar-10-batches-py/ (default: $UNLEARN_BENCH_DATA/cifar10 or ~/.cache/unlearn-bench/cifar10)
    base_model: str | None = None  # class-conditional checkpoint dir (default: `pretrain cifar10`'s output)
    unet_preset: str = "reference"  # recipe for Retrain when the checkpoint has no recipe.json (reference | tiny)
    classifier: str = "clip"  # UA/RA judge: clip (RGD: ViT-B/32 zero-shot, 11 labels) | resnet34 (SalUn)
    clip_model: str = "ViT-B-32"
    clip_pretrained: str = "laion2b_s34b_b79k"
    clip_weights: str | None = None  # local open_clip weights file (else the HF cache, offline)
    clip_prompt: str = "a photo of a {}."
    classifier_dir: str | None = None  # ResNet-34 checkpoint dir (default: `pretrain cifar10-classifier`'s output)
    forget_samples: int = 5000  # images of the target class for UA (SalUn: 500)
    remain_samples_per_class: int = 5000  # images per remaining class for RA and FID (45k + 5k = 50k)
    sample_steps: int = 50  # DDIM steps (eta 0)
    guidance: float = 2.0  # classifier-free guidance scale (1 = conditional model alone)
    sample_batch_size: int = 500
    inception_weights: str | None = None  # clean-fid's inception-2015-12-05.pt (else $UNLEARN_BENCH_INCEPTION, the cache, /tmp)
    fid_stats: str | None = None  # .npz with mu/sigma of the CIFAR-10 train set (else clean-fid's cache, else computed)
    per_class: int = 50  # remain.meta["per_class"]
    neighbour_images_per_class: int = 200

    def __post_init__(self) -> None:
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"classifier must be one of {', '.join(CLASSIFIERS)}, not {self.classifier!r}")
        preset_recipe(self.unet_preset)
        if self.forget_samples < 1 or self.remain_samples_per_class < 2:
            raise ValueError("need forget_samples >= 1 and remain_samples_per_class >= 2")


def class_neighbours(features: torch.Tensor, labels: torch.Tensor, target: int) -> list[int]:
    """Other classes ordered by the distance of their mean feature to the target's (ties: lower id)."""
    classes = sorted(set(labels.tolist()))
    centroids = {c: features[labels == c].float().mean(0) for c in classes}
    dist = {c: float((centroids[c] - centroids[target]).norm()) for c in classes if c != target}
    return sorted(dist, key=lambda c: (dist[c], c))


_FEATURE_CACHE: dict = {}


def classifier_class_features(classifier, key: tuple, data_root: str | None, per_class: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Features of the first `per_class` train images of every class (deterministic; cached per process)."""
    if key not in _FEATURE_CACHE:
        train = load_cifar10(data_root, True)
        idx = torch.cat([torch.nonzero(train.labels == c).flatten()[:per_class] for c in range(len(train.classes))])
        with torch.no_grad():
            feats = torch.cat([classifier.features(train.unit(idx[i : i + 250])).float().cpu() for i in range(0, len(idx), 250)])
        _FEATURE_CACHE[key] = (feats, train.labels[idx])
    return _FEATURE_CACHE[key]


@register_task
class Cifar10Class(Task):
    name = "cifar10-class"
    kind = "class"
    metrics = ("class-accuracy", "fid")
    Config = Cifar10Config
    checkpoint_options = ("base_model", "classifier_dir", "inception_weights")
    description = "erase one CIFAR-10 class from a 35.7M-parameter class-conditional DDPM (UA/RA by CLIP or ResNet-34, clean-fid FID)"
    supports_sequences = True

    def targets(self) -> list[str]:
        return [str(i) for i in range(len(CIFAR10_CLASSES))]

    @property
    def model_dir(self) -> Path:
        return Path(self.config.base_model).expanduser() if self.config.base_model else default_model_dir()

    @property
    def classifier_dir(self) -> Path:
        return Path(self.config.classifier_dir).expanduser() if self.config.classifier_dir else default_classifier_dir()

    def recipe(self) -> ClassDiffusionRecipe:
        return recipe_beside(self.model_dir) or preset_recipe(self.config.unet_preset)

    def load_base_model(self, class_names, device="cpu") -> ClassConditionalModel:
        try:
            return load_class_conditional(self.model_dir, class_names, device=device)
        except MissingWeightsError as exc:
            raise MissingWeightsError(
                f"{exc}; train it with `unlearn-bench pretrain cifar10 --out {self.model_dir}` or pass --base-model / "
                "the task option base_model (any diffusers UNet2DModel with a class embedding of 10+1 rows)"
            ) from None

    def load_classifier(self, class_names, device="cpu"):
        c = self.config
        if c.classifier == "resnet34":
            clf = load_classifier(str(self.classifier_dir), str(device))
            return clf, "ResNet-34", ("resnet34", str(self.classifier_dir))
        from metrics.alignment import OpenClipJudge
        from metrics.clip_classifier import ZeroShotClassifier

        judge = OpenClipJudge(c.clip_model, c.clip_pretrained, c.clip_weights, device=device)
        clf = ZeroShotClassifier(judge, class_names, c.clip_prompt)
        return clf, clf.name, ("clip", c.clip_model, c.clip_pretrained, str(c.clip_weights), c.clip_prompt)

    def provides(self) -> frozenset[str]:
        return CLASS_TASK_PROVIDES

    def plan_info(self) -> dict:
        c = self.config
        recipe = self.recipe()  # a small JSON beside the checkpoint, or the preset: no weights read
        return {
            "eval_images": c.forget_samples + 9 * c.remain_samples_per_class,
            "gpu": True,
            "gflops_forward": UNET_GFLOPS_PER_IMAGE,
            "sample_steps": c.sample_steps,
            "guidance": c.guidance,
            "per_class": c.per_class,
            "num_classes": 10,
            "pretrain_steps": recipe.steps,
            "pretrain_batch_size": recipe.batch_size,
        }

    def required_artifacts(self) -> tuple[str, ...]:
        c = self.config
        out = [] if c.data_root else [CIFAR10_ARTIFACT]
        if c.classifier == "clip" and not c.clip_weights and openclip_is_fetchable(c.clip_model, c.clip_pretrained):
            out.append(OPENCLIP_ARTIFACT)
        if not c.inception_weights:
            out.append(INCEPTION_ARTIFACT)
        return tuple(out)  # the base model and the ResNet-34 are trained here (`unlearn-bench pretrain`), not fetched

    def checkpoints(self) -> dict[str, str]:
        from metrics.inception_fid import resolve_inception_weights

        out = {"cifar10-ddpm": checkpoint_digest(self.model_dir)}
        if is_stand_in(self.config.data_root):
            out["cifar10-data"] = "stand-in: CIFAR-10's format and size, random pixels (a rehearsal's, not the data set)"
        if self.config.classifier == "resnet34":
            out["cifar10-resnet34"] = checkpoint_digest(self.classifier_dir)
        else:
            out["clip"] = f"{self.config.clip_model} {self.config.clip_pretrained}"
        try:
            out["inception"] = file_digest(resolve_inception_weights(self.config.inception_weights))
        except MissingWeightsError:
            out["inception"] = "missing"
        return out

    def plan_sets(self, target: str, erased: tuple[str, ...] = ()) -> dict[str, int]:
        """The class lists and evaluation sets at the task's options, without weights or data (see Task.plan_sets);
        D_f and D_r themselves are the data set's own images of those classes."""
        k, others = kept_classes(self, target, erased)
        c = self.config
        check_counts(self.name, c, "forget_samples", "remain_samples_per_class", "sample_steps", "sample_batch_size", "per_class",
                     "neighbour_images_per_class")
        return set_sizes({"forget classes": [k], "remain classes": others},
                         {"forget": class_forget_set(k, c.forget_samples),
                          "remain": class_remain_set(others, c.remain_samples_per_class, CIFAR10_REMAIN_EVAL_SEED)})


    def prepare(self, target: str, device="cpu", erased: tuple[str, ...] = ()) -> None:
        """The caches build() and the judge read, filled here, in the harness (see Task.prepare): FID's reference
        statistics of the train set (computed once per Inception file when no precomputed statistics apply) and the
        real forgotten class's features (FID's floor). Without it the method's process, which may not write the
        cache, would recompute the statistics in every job (50,000 images through Inception) before failing to keep them."""
        from metrics.inception_fid import CleanInception, cifar10_train_stats, resolve_inception_weights

        k, _ = kept_classes(self, target, erased)
        c = self.config
        train = load_cifar10(c.data_root, True)
        extractor = CleanInception(resolve_inception_weights(c.inception_weights), device=device)
        cifar10_train_stats(extractor, lambda: train, c.fid_stats)
        forgotten_class_features(extractor, train, torch.nonzero(train.labels == k).flatten(), k)

    def build(self, target: str, ctx: RunContext, erased: tuple[str, ...] = ()) -> TaskInstance:
        """`erased` (a sequence's earlier classes): left out of D_r and the remain eval set (the FID reference
        is the whole train set's statistics, erased or not)."""
        from metrics.inception_fid import CleanInception, cifar10_train_stats, resolve_inception_weights

        k, others = kept_classes(self, target, erased)  # the classes the model is asked to keep
        erased = self.validate_erased(target, erased)
        gone = [int(e) for e in erased]
        c = self.config
        train = load_cifar10(c.data_root, True)
        class_names = list(train.classes)
        model = self.load_base_model(class_names, ctx.device)
        classifier, clf_name, clf_key = self.load_classifier(class_names, ctx.device)
        extractor = CleanInception(resolve_inception_weights(c.inception_weights), device=ctx.device)
        reference = cifar10_train_stats(extractor, lambda: load_cifar10(c.data_root, True), c.fid_stats)

        feats, labels = classifier_class_features(classifier, (*clf_key, str(resolve_data_root(c.data_root)), c.neighbour_images_per_class),
                                                  c.data_root, c.neighbour_images_per_class)
        f_idx = torch.nonzero(train.labels == k).flatten()
        r_idx = torch.nonzero(torch.isin(train.labels, torch.tensor(others))).flatten()
        forget = UnlearnData(x=train.pixels(f_idx), keys=train.labels[f_idx].tolist(), groups=train.labels[f_idx])
        remain = UnlearnData(
            x=train.pixels(r_idx),
            keys=train.labels[r_idx].tolist(),
            groups=train.labels[r_idx],
            meta={"per_class": c.per_class, "neighbours": [o for o in class_neighbours(feats, labels, k) if o not in gone],
                  "class_names": class_names, "pretrain_recipe": self.recipe()},
        )
        # eval noise is fixed per set (not per job seed): every method is judged on the same noise
        eval_sets = {
            "forget": class_forget_set(k, c.forget_samples),
            "remain": class_remain_set(others, c.remain_samples_per_class, CIFAR10_REMAIN_EVAL_SEED),
        }
        evaluation = Evaluation(
            classifier=classifier,
            classifier_name=clf_name,
            fid_extractor=extractor,
            fid_reference=reference,
            fid_name=f"{extractor.name} vs CIFAR-10 train",
            fid_reference_source=reference.get("source"),
            fid_floor=lambda: forgotten_class_features(extractor, train, f_idx, k),
            fid_floor_name="real forgotten class (CIFAR-10 train)",
            eval_sets=eval_sets,
            sampler={"steps": c.sample_steps, "guidance": c.guidance, "batch_size": c.sample_batch_size},
            num_classes=len(class_names),
            earlier=earlier_classes(erased, c.forget_samples),
        )
        return TaskInstance(self, str(k), model.to(ctx.device).trainable_copy(), forget.to(ctx.device), remain.to(ctx.device), evaluation)


# -- pretrain recipes ----------------------------------------------------------------------------
def _log(msg: str) -> None:
    get_logger("pretrain").info(msg)


@register_pretrain("cifar10")
def pretrain_cifar10(out: str | None = None, device: str = "cpu", data_root: str | None = None,
                     preset: str = "reference", checkpoint_every: int = 5000) -> dict:
    """Train the class-conditional DDPM by its recipe (resumes from out/train-state when present)."""
    import json

    recipe = preset_recipe(preset)
    out = Path(out).expanduser() if out else default_model_dir()
    train = load_cifar10(data_root, True)
    autocast = torch.bfloat16 if str(device).startswith("cuda") else None
    t0 = time.time()

    def progress(step: int, loss: float) -> None:
        if (step + 1) % 1000 == 0 or step + 1 == recipe.steps:
            rate = (step + 1) / max(time.time() - t0, 1e-9)
            _log(f"pretrain cifar10: step {step + 1}/{recipe.steps} loss {loss:.4f} ({rate:.1f} steps/s this session)")

    model = train_class_conditional(recipe, train.pixels(), train.labels, list(train.classes), device=device, progress=progress,
                                    autocast_dtype=autocast, checkpoint_dir=out / "train-state", checkpoint_every=checkpoint_every)
    seconds = time.time() - t0
    model.save(out)
    measured = {"seconds_this_session": round(seconds, 1), "device": str(device), "autocast": str(autocast)}
    try:  # quality of the base model, when the ResNet-34 judge exists: is the requested class recognised?
        clf = load_classifier(str(default_classifier_dir()), str(device))
        keys = [i % 10 for i in range(1000)]
        images = model.sample(keys, list(range(1000)), steps=50, guidance=2.0, batch_size=500)
        measured["resnet34_sample_accuracy_ddim50_g2"] = classifier_accuracy(clf, images, torch.tensor(keys))
    except MissingWeightsError:
        measured["resnet34_sample_accuracy_ddim50_g2"] = None
    summary = {"recipe": recipe.to_dict(), "measured": measured, "sha256": checkpoint_digest(out)}
    (out / "recipe.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


@register_pretrain("cifar10-classifier")
def pretrain_cifar10_classifier(out: str | None = None, device: str = "cpu", data_root: str | None = None,
                                epochs: int | None = None) -> dict:
    """ResNet-34 on CIFAR-10 train (SalUn's UA/RA judge); test accuracy recorded in recipe.json."""
    import json

    recipe = ClassifierRecipe() if epochs is None else ClassifierRecipe(epochs=epochs)
    out = Path(out).expanduser() if out else default_classifier_dir()
    train, test = load_cifar10(data_root, True), load_cifar10(data_root, False)
    t0 = time.time()
    autocast = torch.bfloat16 if str(device).startswith("cuda") else None
    model = train_classifier(recipe, train.unit(), train.labels, device=device, autocast_dtype=autocast)
    acc = classifier_accuracy(model, test.unit(), test.labels)
    summary = {"recipe": {**recipe.to_dict(), "arch": "torchvision resnet34, 3×3 stem, no max-pool", "augment": "crop pad 4 + hflip"},
               "measured": {"test_accuracy": acc, "seconds": round(time.time() - t0, 1), "device": str(device)}}
    save_classifier(model.cpu(), out, summary)
    summary["sha256"] = checkpoint_digest(out)
    (out / "recipe.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary



def forgotten_class_features(extractor, train, idx: torch.Tensor, k: int, batch_size: int = 250):
    """Inception features of the forgotten class's real train images (FID's floor), cached per network file."""
    from metrics.frechet import batch_features

    path = cache_root() / "fid-floor" / f"cifar10-class{k}-{file_digest(extractor.path)[:16]}.pt"

    def make() -> torch.Tensor:
        return torch.cat([torch.from_numpy(batch_features(extractor, train.unit(idx[i : i + batch_size])))
                          for i in range(0, len(idx), batch_size)])

    return cached(path, make).numpy()
