"""sd-nudity and sd-vangogh: concept and style removal on Stable Diffusion v1.4 (any SD 1.x path).

Prompts are combinatorial (subject × mood × activity × place × time, or scene × artist) from
tasks/prompts/*.json; D_r,train and D_r,test draw from disjoint vocabularies; D_f is the same
prompts with the concept inserted and `forget.paired_keys` holds the safe twin (SalUn's c′).
Training images are generated once by the original model and cached on disk.

Each prompt role can instead be a set of the field's, by name (bench/core/prompt_sets.py: RGD's lists, I2P,
UnlearnDiffAtk's; options under "prompt sets" in SDConfig): its file is read from the prompt-set cache, checked against
its pinned sha256, and its own seeds and guidance are used where the file has them.
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
from bench.core.prompt_sets import AS_TRAINING, PromptRows, get_set, identity, read_prompt_set
from tasks.base import (
    ATTACK_EVAL_SEED,
    NEIGHBOUR_EVAL_SEED,
    NUDITY_EVAL_SEED,
    RETENTION_FLOOR_SEED,
    T2I_EVAL_SEEDS,
    T2I_TASK_PROVIDES,
    Task,
    TaskInstance,
    check_counts,
    limit_sets,
    register_task,
    seeds_for,
    set_sizes,
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


def cut_to(guidance: list[float] | None, eval_set) -> list[float] | None:
    """A set's per-prompt guidance cut to the (possibly `eval_images`-cut) set's length."""
    return None if guidance is None else list(guidance[: len(eval_set[0])])


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
    # prompt sets (issue 36): names of bench/core/prompt_sets.py's registry (`unlearn-bench fetch prompts` caches the
    # files); None: this suite's generated set. A set is used whole, with its file's seeds and guidance where it has them
    # (else the role's fixed seeds and `guidance`); forget_pairs takes the first N of the training sets
    forget_set: str | None = None  # D_f; with remain_set (both or neither): prompt i of each is one D_f/D_r pair
    remain_set: str | None = None  # D_r,train (and SalUn's paired safe prompts)
    remain_test_set: str | None = None  # D_r,test: AS-test and retention
    forget_eval_set: str | None = None  # the forget evaluation (UA; sd-nudity: the NudeNet count unless nudity_eval_set)
    nudity_eval_set: str | None = None  # sd-nudity: the NudeNet count's prompts
    attack_set: str | None = None  # the attack's prompts, all of them (needs attack: true); None: the forget evaluation's
    as_train_set: str | None = None  # AS-train's prompts; "training": the D_r,train prompts themselves (RGD's AS-train)
    # with forget_eval_set: its prompts' concept-free twins, prompt for prompt (RGD's y_test for y_c_test): AS-safe
    forget_eval_twin_set: str | None = None
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

    def __init__(self, config=None):
        super().__init__(config)
        if self.has_safe_twins:  # AS-safe needs each forget prompt's twin: the generated sets have them, files do not
            self.metrics = self.metrics + ("safe-alignment",)

    @property
    def has_safe_twins(self) -> bool:
        """The forget evaluation prompts are the task's own generated ones, each with its concept-free twin."""
        c = self.config
        return getattr(c, "forget_eval_set", None) is None or getattr(c, "forget_eval_twin_set", None) is not None

    def targets(self) -> list[str]:
        return [self.target_name]

    def load_base_model(self, device="cpu") -> TextToImageModel:
        dtype = {"float32": torch.float32, "float16": torch.float16}.get(self.config.dtype)
        if dtype is None:
            raise ConfigError(f"dtype must be float32 or float16, not {self.config.dtype!r}")
        return TextToImageModel.from_pretrained_sd(self.config.model, device=device, dtype=dtype)

    def provides(self) -> frozenset[str]:
        """The text-to-image fields, and what the prompt-set options add (from the registry's metadata: no file read)."""
        names = self.set_names()
        extra = {f"eval_sets:{which}" for which, (option, _) in self.FILE_ROLES.items() if option in names}
        if any(get_set(n).guidance_column for o, n in names.items() if o in {opt for opt, _ in self.FILE_ROLES.values()}):
            extra.add("eval_guidance")
        if "attack_set" in names:
            extra.add("attack_settings")
        if self.has_safe_twins:
            extra.add("eval_sets:safe_twins")
        return T2I_TASK_PROVIDES | extra

    def original_eval_sets(self) -> tuple[str, ...]:
        """Original's evaluation images the task caches: retention's set and floor; the forget set for AS-safe's floor."""
        return ("remain_test", "retention_floor") + (("forget",) if self.has_safe_twins else ())

    def plan_info(self) -> dict:
        """Per job: the judged images (forget, remain_train, remain_test; the nudity count's set when it is another, e.g.
        I2P; the attack's four images per prompt) and the attack's optimisation passes; once per task and options:
        Original's cached images (the D_f/D_r pairs, remain_test and the retention floor), which every job reads from
        the cache. Counted on the sets as built (plan_evaluation), so a prompt file's size is its cost."""
        sets, ev = self.plan_evaluation()
        size = lambda which: len(ev.eval_sets[which][0]) if which in ev.eval_sets else 0  # noqa: E731
        judged = {"forget", "remain_train", "remain_test"} | ({ev.nudity_set} if ev.nudenet_judge else set())
        info = {"eval_images": sum(size(w) for w in judged), "gpu": True,
                "task_images": len(sets["forget"]) + len(sets["remain"]) + sum(size(w) for w in self.original_eval_sets())}
        if self.config.attack:
            from metrics.attack import AttackSettings

            s = AttackSettings()
            n = size("attack") if "attack" in ev.eval_sets else min(s.n_prompts, size("forget"))
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
                      guidance: list[float] | None = None, sampler: dict | None = None) -> dict:
        """{"images": uint8 N×3×H×W, "latents": N×C×h×w} made once per (weights, prompts, seeds, sampler[, per-prompt
        guidance of a prompt file]); `sampler`: model.sample's settings (default: the evaluation's, `sampler()`)."""
        from metrics.base import sample_set

        s = self.sampler() if sampler is None else sampler
        spec = {"model": self.config.model, "weights": weights_hash, "prompts": prompts, "seeds": seeds,
                "sampler": s, "shape": list(model.sample_shape), "dtype": self.config.dtype,
                **({"guidance": list(guidance)} if guidance is not None else {})}  # absent: the keys of earlier caches stay
        key = json_digest(spec, 20)
        path = cache_root() / "sd-images" / f"{label}-{key}.pt"

        def make() -> dict:
            images = sample_set(model, list(prompts), list(seeds), s, guidance)
            latents = torch.cat([model.encode(images[i : i + s["batch_size"]].to(model.device) * 2 - 1).float().cpu()
                                 for i in range(0, len(images), s["batch_size"])])
            return {"images": (images * 255).round().to(torch.uint8), "latents": latents, "spec": spec}

        return cached(path, make)

    def prepare(self, target: str, device="cpu") -> None:
        """Original's images that build(target) reads, generated into the cache here (see Task.prepare)."""
        model = self.load_base_model(device)
        sets, wh = self.sets(), model.weights_hash()
        seeds = list(range(len(sets["forget"])))
        self.cached_images(model, wh, sets["forget"], seeds, f"{self.name}-forget", sampler=self.data_sampler())
        self.cached_images(model, wh, sets["remain"], seeds, f"{self.name}-remain", sampler=self.data_sampler())
        eval_sets, guidance = self.eval_sets(sets), self.eval_guidance()
        for which in self.original_eval_sets():
            self.cached_images(model, wh, *eval_sets[which], f"{self.name}-eval-{which}", cut_to(guidance.get(which), eval_sets[which]))

    def make_sets(self) -> dict:
        """forget/safe/remain training prompts and eval prompt sets (concept-specific), generated."""
        raise NotImplementedError

    # -- prompt sets from files (issue 36) ---------------------------------------------------
    # evaluation set -> (the option naming its file, the seeds' offset when the file has none)
    FILE_ROLES = {"forget": ("forget_eval_set", T2I_EVAL_SEEDS["forget"]),
                  "remain_train": ("as_train_set", T2I_EVAL_SEEDS["remain_train"]),
                  "remain_test": ("remain_test_set", T2I_EVAL_SEEDS["remain_test"]),
                  "attack": ("attack_set", ATTACK_EVAL_SEED)}
    SET_OPTIONS = ("forget_set", "remain_set", "remain_test_set", "forget_eval_set", "nudity_eval_set", "attack_set", "as_train_set",
                   "forget_eval_twin_set")

    def set_names(self) -> dict[str, str]:
        """option -> registry set name, for every prompt-set option that names one."""
        c = self.config
        return {o: getattr(c, o) for o in self.SET_OPTIONS
                if getattr(c, o) is not None and not (o == "as_train_set" and getattr(c, o) == AS_TRAINING)}

    def check_set_options(self) -> None:
        """Options the task could not honour are one line now (an ignored option would be a silent other protocol)."""
        c, names = self.config, self.set_names()
        for name in names.values():
            get_set(name)  # an unknown name: ConfigError listing the known ones
        if (c.forget_set is None) != (c.remain_set is None):
            raise ConfigError(f"{self.name}: options forget_set and remain_set go together (prompt i of each is one D_f/D_r pair)")
        if c.attack_set is not None and not c.attack:
            raise ConfigError(f"{self.name}: option attack_set={c.attack_set!r} needs attack: true")
        if c.forget_eval_twin_set is not None and c.forget_eval_set is None:
            raise ConfigError(f"{self.name}: option forget_eval_twin_set={c.forget_eval_twin_set!r} pairs with forget_eval_set, "
                              "which is not set (the generated forget prompts have their own twins)")
        roles = {o for o, _ in self.FILE_ROLES.values()} | {"forget_set", "remain_set", "as_train_set", "forget_eval_twin_set"}
        for option in names:
            if option not in roles:
                raise ConfigError(f"{self.name}: option {option}={names[option]!r} does not apply to this task")

    def prompt_file(self, option: str) -> PromptRows | None:
        name = self.set_names().get(option)
        return None if name is None else read_prompt_set(name)

    def sets(self) -> dict:
        """make_sets() with the training sets and AS-train's prompts the options name in place of the generated ones."""
        c = self.config
        self.check_set_options()
        sets = self.make_sets()
        forget, remain = self.prompt_file("forget_set"), self.prompt_file("remain_set")
        if forget is not None:
            n = c.forget_pairs
            for rows, option in ((forget, "forget_set"), (remain, "remain_set")):
                if n > len(rows.prompts):
                    raise ConfigError(f"option forget_pairs={n} exceeds the limit: prompt set {rows.name!r} ({option}) has "
                                      f"{len(rows.prompts)} prompts")
            sets.update(forget=list(forget.prompts[:n]), safe=list(remain.prompts[:n]), remain=list(remain.prompts[:n]))
        if c.as_train_set == AS_TRAINING:
            sets["eval_remain_train"] = list(sets["remain"])
        return sets

    def file_eval_sets(self) -> tuple[dict, dict]:
        """({evaluation set: (prompts, seeds)}, {evaluation set: guidance per prompt}) of the roles read from files."""
        sets, guidance = {}, {}
        for which, (option, offset) in self.FILE_ROLES.items():
            rows = self.prompt_file(option)
            if rows is None:
                continue
            sets[which] = (list(rows.prompts), list(rows.seeds) if rows.seeds is not None else seeds_for(len(rows.prompts), offset))
            if rows.guidance is not None:
                guidance[which] = list(rows.guidance)
        return sets, guidance

    def check_disjoint(self, sets: dict, eval_sets: dict) -> None:
        """An evaluation set of a file, or any beside a training set of a file, shares no prompt with D_f or D_r: a
        model would be judged on what it was trained on (AS-train on the training prompts is the one wanted overlap)."""
        if not self.set_names():
            return
        training = set(sets["forget"]) | set(sets["safe"]) | set(sets["remain"])
        for which in (w for w in eval_sets if w not in ("remain_train", "retention_floor")):
            shared = [p for p in eval_sets[which][0] if p in training]
            if shared:
                raise ConfigError(f"{self.name}: evaluation set {which!r} shares {len(shared)} prompt(s) with the training "
                                  f"prompts (e.g. {shared[0]!r}); evaluation prompts must be disjoint from D_f and D_r")

    def given_checkpoints(self) -> dict[str, str]:
        """The user's weights (Task.given_checkpoints) and every prompt set an option names, as `prompt set <name>
        sha256:<pinned>`: the setting hash changes with the set and its file, and the record keeps both."""
        return {**super().given_checkpoints(), **{o: identity(n) for o, n in self.set_names().items()}}

    def plan_sets(self, target: str, erased: tuple[str, ...] = ()) -> dict[str, int]:
        """The prompt sets and evaluation sets at the task's options, without weights (see Task.plan_sets)."""
        self.validate_target(target)
        sets, evaluation = self.plan_evaluation()
        return set_sizes({k: sets[k] for k in ("forget", "remain")}, evaluation.eval_sets)

    def plan_evaluation(self) -> tuple[dict, Evaluation]:
        """(training prompt sets, the Evaluation's sets) as build() makes them, without weights."""
        check_counts(self.name, self.config, "forget_pairs", "eval_prompts", "sample_steps", "batch_size", "i2p_limit", "eval_images")
        sets = self.sets()
        evaluation = Evaluation(eval_sets=self.eval_sets(sets, limit=False), eval_guidance=self.eval_guidance())
        self.complete_evaluation(evaluation)  # the concept's own sets (I2P, neighbours): read, not generated
        self.check_disjoint(sets, evaluation.eval_sets)
        self.limit_evaluation(evaluation)
        return sets, evaluation

    def eval_sets(self, sets: dict, limit: bool = True) -> dict:
        """The evaluation sets: forget, remain_train, remain_test (the generated prompts, one seed per prompt from
        T2I_EVAL_SEEDS), those the options read from files, the attack's when a file names it, and retention_floor
        (remain_test's prompts under RETENTION_FLOOR_SEED); each cut to its first `eval_images` prompts when that option
        is set (limit)."""
        out = {name: (list(sets[f"eval_{name}"]), seeds_for(len(sets[f"eval_{name}"]), offset)) for name, offset in T2I_EVAL_SEEDS.items()}
        out.update(self.file_eval_sets()[0])
        out["retention_floor"] = (out["remain_test"][0], seeds_for(len(out["remain_test"][0]), RETENTION_FLOOR_SEED))
        if self.has_safe_twins:  # the forget prompts' concept-free twins, prompt for prompt (metrics/safe_alignment.py)
            twins = self.prompt_file("forget_eval_twin_set")
            if twins is not None and len(twins.prompts) != len(out["forget"][0]):
                raise ConfigError(f"{self.name}: prompt set {twins.name!r} (forget_eval_twin_set) has {len(twins.prompts)} prompts, "
                                  f"the forget evaluation {len(out['forget'][0])}: twins go prompt for prompt")
            out["safe_twins"] = (list(twins.prompts) if twins is not None else list(sets["eval_forget_safe"]), out["forget"][1])
        return limit_sets(out, self.config.eval_images) if limit else out

    def eval_guidance(self) -> dict[str, list[float]]:
        """Per-prompt guidance of the evaluation sets whose files carry it (retention_floor shares remain_test's)."""
        guidance = self.file_eval_sets()[1]
        if "remain_test" in guidance:
            guidance["retention_floor"] = guidance["remain_test"]
        return guidance

    def limit_evaluation(self, evaluation: Evaluation) -> None:
        """`eval_images` applied to what complete_evaluation added (I2P and its guidance, the neighbours), and to the
        files' guidance."""
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
        sets = self.sets()
        n = len(sets["forget"])
        seeds = list(range(n))
        wh = model.weights_hash()  # hashed once per build: the cache key of the original's images
        f = self.cached_images(model, wh, sets["forget"], seeds, f"{self.name}-forget", sampler=self.data_sampler())
        r = self.cached_images(model, wh, sets["remain"], seeds, f"{self.name}-remain", sampler=self.data_sampler())
        groups = torch.arange(n)
        forget = UnlearnData(x=f["latents"], keys=list(sets["forget"]), paired_keys=list(sets["safe"]), groups=groups,
                             meta={"concept_prompt": self.concept_prompt(target)})
        remain = UnlearnData(x=r["latents"], keys=list(sets["remain"]), groups=groups,
                             meta={"narrow_indices": self.narrow_indices(sets["remain"])},
                             paired_with_forget=True)  # remain i is forget i's concept-free twin (same seed)
        eval_sets, guidance = self.eval_sets(sets, limit=False), self.eval_guidance()
        cut = self.eval_sets(sets)
        ret = {w: self.cached_images(model, wh, *cut[w], f"{self.name}-eval-{w}", cut_to(guidance.get(w), cut[w]))
               for w in self.original_eval_sets()}
        from metrics.alignment import OpenClipJudge

        evaluation = Evaluation(eval_sets=eval_sets, sampler=self.sampler(), prompt_sets=sets, eval_guidance=guidance,
                                original_images={w: r["images"].float() / 255 for w, r in ret.items()}, retention_space=c.retention_space,
                                clip_judge=OpenClipJudge(c.clip_model, c.clip_pretrained, c.clip_weights, device=ctx.device,
                                                         preprocess=c.clip_preprocess))
        self.complete_evaluation(evaluation)
        self.check_disjoint(sets, evaluation.eval_sets)
        self.limit_evaluation(evaluation)
        if "attack" in evaluation.eval_sets:  # a file's attack prompts are attacked all (UnlearnDiffAtk: its 142)
            from metrics.attack import AttackSettings

            evaluation.attack_settings = AttackSettings(n_prompts=len(evaluation.eval_sets["attack"][0]))
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
        eval_forget, eval_forget_safe = nudity_pairs("test", c.eval_prompts, seed=1, option="eval_prompts")
        return {
            "forget": forget, "safe": safe, "remain": safe,
            "eval_forget": eval_forget, "eval_forget_safe": eval_forget_safe,
            "eval_remain_train": scene_prompts("train", c.eval_prompts, seed=2),
            "eval_remain_test": scene_prompts("test", c.eval_prompts, seed=3),
        }

    def concept_prompt(self, target: str) -> str:
        return "nudity"  # train-esd.py --prompt 'nudity' (the ESD README)

    FILE_ROLES = {**StableDiffusionTask.FILE_ROLES, "nudity": ("nudity_eval_set", NUDITY_EVAL_SEED)}

    def check_set_options(self) -> None:
        super().check_set_options()
        if self.config.i2p_csv and self.config.nudity_eval_set:
            raise ConfigError(f"{self.name}: options i2p_csv and nudity_eval_set both name the nudity count's prompts; give one")

    def complete_evaluation(self, evaluation: Evaluation) -> None:
        evaluation.nudenet_judge = True
        if "nudity" in evaluation.eval_sets:  # a prompt file's (nudity_eval_set)
            evaluation.nudity_set = "nudity"
        evaluation.nudenet_classes = self.config.nudenet_classes
        if self.config.i2p_csv:
            prompts, seeds, guidance = read_i2p(self.config.i2p_csv, self.config.i2p_limit)
            evaluation.eval_sets["i2p"] = (prompts, seeds)
            evaluation.nudity_set = "i2p"
            evaluation.eval_guidance = {**evaluation.eval_guidance, "i2p": guidance}

    def provides(self) -> frozenset[str]:
        i2p = {"eval_sets:i2p", "eval_guidance"} if self.config.i2p_csv else set()
        return super().provides() | {"nudenet_judge"} | i2p


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
        eval_forget, eval_forget_safe, _ = style_pairs("test", c.eval_prompts, target, seed=1, option="eval_prompts")
        _, _, eval_train = style_pairs("train", c.eval_prompts, target, seed=2, option="eval_prompts")
        _, _, eval_test = style_pairs("test", c.eval_prompts, target, seed=3, option="eval_prompts")
        return {"forget": forget, "safe": safe, "remain": remain, "eval_forget": eval_forget, "eval_forget_safe": eval_forget_safe,
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
