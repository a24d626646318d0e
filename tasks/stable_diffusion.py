"""sd-nudity and sd-vangogh: concept and style removal on Stable Diffusion v1.4 (any SD 1.x path).

Prompts are combinatorial (subject × mood × activity × place × time, or scene × artist) from
tasks/prompts/*.json; D_r,train and D_r,test draw from disjoint vocabularies; D_f is the same
prompts with the concept inserted and `forget.paired_keys` holds the safe twin (SalUn's c′).
Training images are generated once by the original model and cached on disk.
"""
from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Literal

import torch

from bench.core.adapters.text_to_image import SD14, TextToImageModel
from bench.core.cache import cache_root, cached
from bench.core.context import RunContext
from bench.core.data import UnlearnData
from bench.core.errors import ConfigError
from bench.core.evaluation import Evaluation, NeighbourSet, ZeroShot
from bench.core.fetch_registry import OPENCLIP_ARTIFACT, SD14_ARTIFACT, openclip_is_fetchable
from bench.core.hashing import files_digest, json_digest
from tasks.base import (
    NEIGHBOUR_EVAL_SEED,
    T2I_TASK_PROVIDES,
    Task,
    TaskInstance,
    check_counts,
    limit_sets,
    register_task,
    seeds_for,
    set_sizes,
    t2i_eval_sets,
)

PROMPT_DIR = Path(__file__).parent / "prompts"


def vocabulary() -> dict:
    return json.loads((PROMPT_DIR / "sd_vocabulary.json").read_text())


def artists() -> dict:
    return json.loads((PROMPT_DIR / "artists.json").read_text())


def scene_prompts(split: str, n: int, seed: int, option: str = "eval_prompts") -> list[str]:
    """n distinct prompts from the split's vocabulary: subject mood activity place time. `option` names the
    task option that asked for n, for the one-line error when the vocabulary cannot give that many."""
    v = vocabulary()[split]
    combos = list(itertools.product(v["subject"], v["mood"], v["activity"], v["place"], v["time"]))
    if n > len(combos):
        raise ConfigError(f"option {option}={n} exceeds the limit: the {split} vocabulary makes only {len(combos)} distinct prompts")
    rng = random.Random(f"{split}-{seed}")
    return [f"{s}, {m}, {a} {p} {t}" for s, m, a, p, t in rng.sample(combos, n)]


def nudity_pairs(split: str, n: int, seed: int = 0, option: str = "forget_pairs") -> tuple[list[str], list[str]]:
    """(D_f prompts, paired safe prompts): a nudity word inserted before the subject."""
    words = vocabulary()["nudity_words"]
    safe = scene_prompts(split, n, seed, option)
    forget = []
    for i, p in enumerate(safe):
        subject, rest = p.split(", ", 1)
        article, _, noun = subject.partition(" ")
        forget.append(f"{words[i % len(words)]} {noun}, {rest}" if article in ("a", "an") else f"{words[i % len(words)]} {p}")
    return forget, safe


def style_scenes(split: str) -> tuple[list[str], list[str]]:
    """The split's paintable scenes: landscapes and still lifes (scene, mood, time: 8 × 4 × 4 = 128) and
    figure scenes (subject activity place, mood, time: 8 × 6 × 6 × 4 × 4 = 4,608). Every word of a scene comes
    from its split's vocabulary, whose lists are disjoint between train and test, so no train scene is a test scene."""
    v = vocabulary()[split]
    landscapes = [f"{sc}, {m}, {t}" for sc, m, t in itertools.product(v["scene"], v["mood"], v["time"])]
    figures = [f"{s} {a} {p}, {m}, {t}" for s, a, p, m, t in itertools.product(v["subject"], v["activity"], v["place"], v["mood"], v["time"])]
    return landscapes, figures


def style_pairs(split: str, n: int, target: str, seed: int = 0, option: str = "forget_pairs") -> tuple[list[str], list[str], list[str]]:
    """(D_f prompts, paired safe prompts, remain prompts) for an artist style.

    Scenes alternate landscape and figure scene (each in a seeded order) while both last, then the figure
    scenes go on: half landscapes up to 256 prompts, all 128 landscapes and 672 figure scenes at 800.
    Remain mixes plain scenes and scenes in the split's other artists' styles.
    """
    others = artists()[f"remain_{split}"]
    rng = random.Random(f"style-{split}-{seed}")
    landscapes, figures = style_scenes(split)
    if n > len(landscapes) + len(figures):
        raise ConfigError(f"option {option}={n} exceeds the limit: the {split} vocabulary makes only "
                          f"{len(landscapes) + len(figures)} distinct scenes")
    landscapes, figures = rng.sample(landscapes, len(landscapes)), rng.sample(figures, len(figures))
    both = min(len(landscapes), len(figures))
    scenes = [s for pair in zip(landscapes[:both], figures[:both]) for s in pair] + landscapes[both:] + figures[both:]
    picked = scenes[:n]
    forget = [f"{s}, in the style of {target}" for s in picked]
    remain = [s if i % 2 == 0 else f"{s}, in the style of {others[i // 2 % len(others)]}" for i, s in enumerate(picked)]
    return forget, picked, remain


def read_i2p(path: str, limit: int | None = None) -> tuple[list[str], list[int], list[float]]:
    """I2P-style CSV: columns prompt, sd_seed, sd_guidance_scale."""
    import pandas as pd

    try:
        df = pd.read_csv(path)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot read I2P CSV {path}: {e}") from e
    missing = {"prompt", "sd_seed", "sd_guidance_scale"} - set(df.columns)
    if missing:
        raise ConfigError(f"I2P CSV {path} lacks column(s) {', '.join(sorted(missing))}")
    if limit:
        df = df.head(limit)
    return df["prompt"].astype(str).tolist(), df["sd_seed"].astype(int).tolist(), df["sd_guidance_scale"].astype(float).tolist()


def sd_checkpoint_id(model: str) -> str:
    """Provenance without loading: the HF snapshot commit, or a content hash of a local UNet's weights."""
    local = Path(model).expanduser()
    if local.is_dir():
        files = sorted((local / "unet").glob("diffusion_pytorch_model*.*"))
        if not files:
            return f"{model} (no unet weights)"
        return "sha256:" + _weights_digest(tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files))
    try:
        from huggingface_hub import snapshot_download

        return f"{model}@" + Path(snapshot_download(model, local_files_only=True)).name
    except Exception:  # noqa: BLE001 - not in the cache: the job itself will say so
        return f"{model} (not in the local cache)"


@lru_cache(maxsize=8)
def _weights_digest(files: tuple) -> str:
    """files_digest of the named files, memoised by (name, size, mtime): a UNet's GBs are read once per process."""
    return files_digest([name for name, _, _ in files])


@dataclass
class SDConfig:
    model: str = SD14  # hub id (read from the HF cache, offline) or a local SD 1.x directory
    forget_pairs: int = 8  # D_f / D_r,train images made by the original (paper: 800)
    eval_prompts: int = 8  # prompts per evaluation set (paper: 100)
    # judge only the first N prompts of each evaluation set (None: all). The sets are still built at eval_prompts
    # (and I2P at i2p_limit): a rehearsal (`run --rehearse`) or a quick look, never a result to cite
    eval_images: int | None = None
    sample_steps: int = 50  # DDIM steps, eta 0 (SD protocol: 50)
    guidance: float = 7.5  # classifier-free guidance (SD protocol: 7.5)
    batch_size: int = 4  # images per sampling batch
    i2p_csv: str | None = None  # nudity evaluation prompts (prompt, sd_seed, sd_guidance_scale)
    i2p_limit: int | None = None
    clip_model: str = "ViT-B-32"
    clip_pretrained: str = "laion2b_s34b_b79k"
    clip_weights: str | None = None  # local open_clip weights file (else the HF cache, offline); an architecture open_clip
    # does not ship (clip_model not in open_clip.list_models()) is read from `<clip_model>.json` beside the file
    dtype: str = "float32"  # float32 | float16 (accelerator only)
    # retention's distance: auto = LPIPS (AlexNet) when `lpips` and its backbone weights are local, else 1 − cos of
    # the CLIP judge's image embeddings (the column name says which); lpips = LPIPS or an error naming what is missing;
    # clip = the CLIP judge's, on every machine
    retention_space: str = "auto"
    attack: bool = False  # add the adversarial-prompt ASR columns (metrics/attack.py; on in the paper suite)
    relearn: bool = False  # add the relearning columns (metrics/relearn.py; sd-vangogh only: it needs a UA judge)
    neighbours: bool = False  # add the neighbouring-artists column (metrics/neighbours.py; sd-vangogh only)
    # reference evaluation settings (issue 36): the RGD reference's evaluation, option by option (docs/PROTOCOL.md,
    # "Deviations from the reference evaluation"); the defaults are this suite's. They change the judged images and the
    # judges only: D_f and D_r, the training images Original makes, keep the default sampler (`data_sampler`)
    eval_scheduler: Literal["ddim", "pndm"] = "ddim"  # pndm: the checkpoint's scheduler config as PNDMScheduler, SD v1.4's
    # pipeline default; seeds stay fixed per prompt (the reference samples unseeded)
    eval_fp16: bool = False  # judged images by fp16 copies of UNet, VAE and text encoder (the reference's torch_dtype=float16)
    clip_preprocess: Literal["tensor", "open_clip"] = "tensor"  # open_clip: images quantised to 8 bits, through open_clip's
    # own PIL transform (the reference's, on its saved PNGs); tensor: float images, bicubic resize without antialiasing
    nudenet_classes: Literal["exposed7", "reference"] = "exposed7"  # sd-nudity's NudeNet columns (metrics/nudity.py):
    # seven exposed classes at score >= 0.6, or reference: every NudeNet class at score > 0.6, as the reference counts


class StableDiffusionTask(Task):
    Config = SDConfig
    checkpoint_options = ("model",)

    def checkpoint_identity(self, option: str, value: str) -> str:
        return sd_checkpoint_id(value) if option == "model" else super().checkpoint_identity(option, value)
    target_name: str
    metrics = ("alignment", "retention")

    def targets(self) -> list[str]:
        return [self.target_name]

    def load_base_model(self, device="cpu") -> TextToImageModel:
        dtype = {"float32": torch.float32, "float16": torch.float16}.get(self.config.dtype)
        if dtype is None:
            raise ConfigError(f"dtype must be float32 or float16, not {self.config.dtype!r}")
        return TextToImageModel.from_pretrained_sd(self.config.model, device=device, dtype=dtype)

    def provides(self) -> frozenset[str]:
        return T2I_TASK_PROVIDES

    def plan_info(self) -> dict:
        """Per job: the judged images (forget, remain_train, remain_test; I2P; the attack's four images per prompt) and
        the attack's optimisation passes; once per task and options: Original's cached images (the D_f/D_r pairs,
        remain_test and the retention floor), which every job reads from the cache."""
        c = self.config
        m = c.eval_prompts if c.eval_images is None else min(c.eval_prompts, c.eval_images)
        n_eval = 3 * m + (c.i2p_limit or 0)
        info = {"eval_images": n_eval, "task_images": 2 * c.forget_pairs + 2 * m, "gpu": True}
        if c.attack:
            from metrics.attack import AttackSettings

            s = AttackSettings()
            n = min(s.n_prompts, m)
            info["eval_images"] += 4 * n  # x0 by Original, the plain prompt, after the soft and the discrete attack
            info["attack_passes"] = 2 * s.steps * n  # two attacks, one forward+backward per prompt and step
        return info

    def checkpoints(self) -> dict[str, str]:
        return {"stable-diffusion": sd_checkpoint_id(self.config.model)}

    def required_artifacts(self) -> tuple[str, ...]:
        c = self.config
        out = [SD14_ARTIFACT] if c.model == SD14 else []  # another hub id or a local directory is the user's
        if not c.clip_weights and openclip_is_fetchable(c.clip_model, c.clip_pretrained):
            out.append(OPENCLIP_ARTIFACT)
        return tuple(out)

    def data_sampler(self) -> dict:
        """model.sample's settings for the training images Original makes (D_f, D_r): the suite's, whatever the
        reference evaluation options say (they are evaluation settings)."""
        return {"steps": self.config.sample_steps, "guidance": self.config.guidance, "batch_size": self.config.batch_size}

    def sampler(self) -> dict:
        """model.sample's settings for the judged images: data_sampler plus the reference evaluation options that are set
        (only those: the default sampler, and the image caches keyed by it, stay as they were)."""
        c = self.config
        extra = {"scheduler": c.eval_scheduler} if c.eval_scheduler != "ddim" else {}
        return {**self.data_sampler(), **extra, **({"dtype": "float16"} if c.eval_fp16 else {})}

    # -- cached generation by the original model ---------------------------------------------
    def cached_images(self, model: TextToImageModel, weights_hash: str, prompts: list[str], seeds: list[int], label: str,
                      sampler: dict | None = None) -> dict:
        """{"images": uint8 N×3×H×W, "latents": N×C×h×w} made once per (weights, prompts, seeds, sampler); `sampler`:
        model.sample's settings (default: the evaluation's, `sampler()`)."""
        s = self.sampler() if sampler is None else sampler
        spec = {"model": self.config.model, "weights": weights_hash, "prompts": prompts, "seeds": seeds,
                "sampler": s, "shape": list(model.sample_shape), "dtype": self.config.dtype}
        key = json_digest(spec, 20)
        path = cache_root() / "sd-images" / f"{label}-{key}.pt"

        def make() -> dict:
            images = model.sample(prompts, seeds, **s)
            latents = torch.cat([model.encode(images[i : i + s["batch_size"]].to(model.device) * 2 - 1).float().cpu()
                                 for i in range(0, len(images), s["batch_size"])])
            return {"images": (images * 255).round().to(torch.uint8), "latents": latents, "spec": spec}

        return cached(path, make)

    def prepare(self, target: str, device="cpu") -> None:
        """Original's images that build(target) reads, generated into the cache here (see Task.prepare)."""
        c = self.config
        model = self.load_base_model(device)
        sets, wh, seeds = self.make_sets(), model.weights_hash(), list(range(c.forget_pairs))
        self.cached_images(model, wh, sets["forget"], seeds, f"{self.name}-forget", self.data_sampler())
        self.cached_images(model, wh, sets["remain"], seeds, f"{self.name}-remain", self.data_sampler())
        eval_sets = self.eval_sets(sets)
        for which in ("remain_test", "retention_floor"):
            self.cached_images(model, wh, *eval_sets[which], f"{self.name}-eval-{which}")

    def make_sets(self) -> dict:
        """forget/safe/remain training prompts and eval prompt sets (concept-specific)."""
        raise NotImplementedError

    def plan_sets(self, target: str, erased: tuple[str, ...] = ()) -> dict[str, int]:
        """The prompt sets and evaluation sets at the task's options, without weights (see Task.plan_sets)."""
        self.validate_target(target)
        c = self.config
        check_counts(self.name, c, "forget_pairs", "eval_prompts", "sample_steps", "batch_size", "i2p_limit", "eval_images")
        sets = self.make_sets()
        evaluation = Evaluation(eval_sets=self.eval_sets(sets))
        self.complete_evaluation(evaluation)  # the concept's own sets (I2P, neighbours): read, not generated
        self.limit_evaluation(evaluation)
        return set_sizes({k: sets[k] for k in ("forget", "remain")}, evaluation.eval_sets)

    def eval_sets(self, sets: dict) -> dict:
        """The evaluation sets (t2i_eval_sets), each cut to its first `eval_images` prompts when that option is set."""
        return limit_sets(t2i_eval_sets(sets, self.config.eval_prompts), self.config.eval_images)

    def limit_evaluation(self, evaluation: Evaluation) -> None:
        """`eval_images` applied to what complete_evaluation added (I2P and its guidance, the neighbours)."""
        n = self.config.eval_images
        if n is None:
            return
        evaluation.eval_sets = limit_sets(evaluation.eval_sets, n)
        evaluation.eval_guidance = {k: v[:n] for k, v in evaluation.eval_guidance.items()}
        if evaluation.neighbours is not None:
            evaluation.neighbours = replace(evaluation.neighbours, truth=evaluation.neighbours.truth[:n])

    def complete_evaluation(self, evaluation: Evaluation) -> None:
        """The concept's own evaluation fields (judges, extra sets), filled in place."""

    def narrow_indices(self, remain_prompts: list[str]) -> list[int]:
        """A non-diverse slice of D_r (RG's remain set; the SD baselines' single safe prompt):
        the remain prompts sharing the first one's subject."""
        lead = remain_prompts[0].split(", ")[0]
        return [i for i, p in enumerate(remain_prompts) if p.split(", ")[0] == lead]

    def build(self, target: str, ctx: RunContext) -> TaskInstance:
        from metrics.retention import check_space

        self.validate_target(target)
        c = self.config
        check_space(c.retention_space)  # before anything loads: LPIPS asked for but absent is one clear error
        model = self.load_base_model(ctx.device)
        sets = self.make_sets()
        n = c.forget_pairs
        seeds = list(range(n))
        wh = model.weights_hash()  # hashed once per build: the cache key of the original's images
        f = self.cached_images(model, wh, sets["forget"], seeds, f"{self.name}-forget", self.data_sampler())
        r = self.cached_images(model, wh, sets["remain"], seeds, f"{self.name}-remain", self.data_sampler())
        groups = torch.arange(n)
        forget = UnlearnData(x=f["latents"], keys=list(sets["forget"]), paired_keys=list(sets["safe"]), groups=groups,
                             meta={"concept_prompt": self.concept_prompt(target)})
        remain = UnlearnData(x=r["latents"], keys=list(sets["remain"]), groups=groups,
                             meta={"narrow_indices": self.narrow_indices(sets["remain"])},
                             paired_with_forget=True)  # remain i is forget i's concept-free twin (same seed)
        eval_sets = self.eval_sets(sets)
        ret = {w: self.cached_images(model, wh, *eval_sets[w], f"{self.name}-eval-{w}") for w in ("remain_test", "retention_floor")}
        from metrics.alignment import OpenClipJudge

        evaluation = Evaluation(eval_sets=eval_sets, sampler=self.sampler(), prompt_sets=sets,
                                original_images={w: r["images"].float() / 255 for w, r in ret.items()}, retention_space=c.retention_space,
                                clip_judge=OpenClipJudge(c.clip_model, c.clip_pretrained, c.clip_weights, device=ctx.device,
                                                         preprocess=c.clip_preprocess))
        self.complete_evaluation(evaluation)
        self.limit_evaluation(evaluation)
        return TaskInstance(self, target, model.trainable_copy(), forget.to(ctx.device), remain.to(ctx.device), evaluation)


@register_task
class SDNudity(StableDiffusionTask):
    name = "sd-nudity"
    kind = "concept"
    target_name = "nudity"
    metrics = ("alignment", "nudity", "retention")
    recipe = "nudity"  # the references' own nudity settings (e.g. Concept Ablation's README command)
    description = "erase nudity from Stable Diffusion v1.4 (AS train/test, NudeNet counts, retention)"

    def make_sets(self) -> dict:
        c = self.config
        forget, safe = nudity_pairs("train", c.forget_pairs)
        eval_forget, _ = nudity_pairs("test", c.eval_prompts, seed=1, option="eval_prompts")
        return {
            "forget": forget, "safe": safe, "remain": safe,
            "eval_forget": eval_forget,
            "eval_remain_train": scene_prompts("train", c.eval_prompts, seed=2),
            "eval_remain_test": scene_prompts("test", c.eval_prompts, seed=3),
        }

    def concept_prompt(self, target: str) -> str:
        return "nudity"  # train-esd.py --prompt 'nudity' (the ESD README)

    def complete_evaluation(self, evaluation: Evaluation) -> None:
        evaluation.nudenet_judge = True
        evaluation.nudenet_classes = self.config.nudenet_classes
        if self.config.i2p_csv:
            prompts, seeds, guidance = read_i2p(self.config.i2p_csv, self.config.i2p_limit)
            evaluation.eval_sets["i2p"] = (prompts, seeds)
            evaluation.nudity_set, evaluation.eval_guidance = "i2p", {"i2p": guidance}

    def provides(self) -> frozenset[str]:
        i2p = {"eval_sets:i2p", "eval_guidance"} if self.config.i2p_csv else set()
        return super().provides() | {"nudenet_judge"} | i2p

    def plan_info(self) -> dict:
        info = super().plan_info()
        if self.config.i2p_csv and not self.config.i2p_limit:
            info["eval_images"] += len(read_i2p(self.config.i2p_csv)[0])
        return info


@register_task
class SDVanGogh(StableDiffusionTask):
    name = "sd-vangogh"
    kind = "style"
    target_name = "vangogh"
    metrics = ("zero-shot-ua", "alignment", "retention")
    description = "erase Van Gogh's style from Stable Diffusion v1.4 (CLIP zero-shot UA, AS train/test, retention)"

    def provides(self) -> frozenset[str]:
        extra = {"neighbours", "eval_sets:neighbours"} if self.config.neighbours else set()
        return super().provides() | {"zero_shot"} | extra

    def concept_prompt(self, target: str) -> str:
        return "Van Gogh"  # the artist as the ESD paper erases it (its prompts say "Vincent van Gogh")

    def make_sets(self) -> dict:
        c = self.config
        target = artists()["target"]
        forget, safe, remain = style_pairs("train", c.forget_pairs, target)
        eval_forget, _, _ = style_pairs("test", c.eval_prompts, target, seed=1, option="eval_prompts")
        _, _, eval_train = style_pairs("train", c.eval_prompts, target, seed=2, option="eval_prompts")
        _, _, eval_test = style_pairs("test", c.eval_prompts, target, seed=3, option="eval_prompts")
        return {"forget": forget, "safe": safe, "remain": remain, "eval_forget": eval_forget,
                "eval_remain_train": eval_train, "eval_remain_test": eval_test}

    def narrow_indices(self, remain_prompts: list[str]) -> list[int]:
        """The plain scenes of D_r (no other artist's style): one style instead of many."""
        return [i for i, p in enumerate(remain_prompts) if ", in the style of " not in p]

    def complete_evaluation(self, evaluation: Evaluation) -> None:
        a = artists()
        labels = [f"a painting in the style of {name}" for name in a["zero_shot"]]
        evaluation.zero_shot = ZeroShot(labels, a["zero_shot"].index(a["target"]), "artists")
        if self.config.neighbours:  # the closest artists: does erasing Van Gogh erase them too?
            m, names = self.config.eval_prompts, a["neighbours"]
            scenes, _, _ = style_pairs("test", m, a["target"], seed=4, option="eval_prompts")
            prompts = [p.replace(a["target"], names[i % len(names)]) for i, p in enumerate(scenes)]
            evaluation.eval_sets["neighbours"] = (prompts, seeds_for(m, NEIGHBOUR_EVAL_SEED))
            evaluation.neighbours = NeighbourSet(labels, [a["zero_shot"].index(names[i % len(names)]) for i in range(m)], tuple(names))
