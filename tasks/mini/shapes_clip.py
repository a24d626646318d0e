"""Small open_clip CLIPs trained on the mini text world: one text encoder, one alignment judge.

Architecture: an open_clip ViT + text transformer from a custom config (16×16 images, 4×4
patches, width 64, context 16). Text goes through open_clip's own BPE tokenizer; the token ids
of the world's vocabulary are then compacted to a small table (`token_ids.json`), so the
embedding matrix has ~60 rows instead of 49,408 (the checkpoints stay ~1 MB). Order is kept, so
the end-of-text token is still the largest id and open_clip's argmax pooling works unchanged;
words outside the world map to one UNK id.

Checkpoints use open_clip's `local-dir:` layout (open_clip_config.json + open_clip_model.safetensors)
and load with `open_clip.create_model("local-dir:...")`.
"""
from __future__ import annotations

import json
import math
import random
import shutil
import time
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from bench.core.errors import MissingWeightsError
from tasks.base import SHAPES_HELDOUT_SEED, seeds_for
from tasks.mini import shapes

CONTEXT_LENGTH = 16
ARCH = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": shapes.SIZE, "layers": 3, "width": 64, "patch_size": 4, "head_width": 32},
    "text_cfg": {"context_length": CONTEXT_LENGTH, "width": 64, "heads": 2, "layers": 3},
}
PREPROCESS = {"size": shapes.SIZE, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}

# Caption templates. {c} colour, {s} shape, {b} background, {st} style, {canonical} = shapes.caption.
ENCODER_TEMPLATES = (
    "{canonical}", "{canonical}", "{canonical}",
    "a {c} {s} on a {b} background in {st} style",
    "a {s}", "a {c} {s}", "a {s} on a {b} background", "a {s} in {st} style", "a {c} {s} in {st} style",
    "a shape in {st} style", "a {c} shape", "a shape on a {b} background",
)
# the judge also sees templates the encoder never saw (different phrasing of the same attributes)
JUDGE_TEMPLATES = ENCODER_TEMPLATES + (
    "a picture of a {c} {s}", "an image of a {s} in {st} style", "a {st} style picture of a {s}",
    "a {s} drawn in {c} on {b}",
)
EXTRA_WORDS = "a an the of in on with picture image photo drawing drawn style background shape painting"


def attributes_of(template: str) -> tuple[str, ...]:
    """Which attributes a template states (the rest are unconstrained: used for multi-positive targets)."""
    if "{canonical}" in template:
        return ("c", "s", "b")  # plus style, handled in `mentioned`
    return tuple(k for k in ("c", "s", "b", "st") if "{" + k + "}" in template)


def fill(template: str, spec: shapes.ShapeSpec) -> str:
    return template.format(canonical=shapes.caption(spec), c=spec.colour, s=spec.shape, b=spec.background, st=spec.style)


def mentioned(template: str, spec: shapes.ShapeSpec) -> dict[str, str]:
    values = {"c": spec.colour, "s": spec.shape, "b": spec.background, "st": spec.style}
    out = {k: values[k] for k in attributes_of(template)}
    if "{canonical}" in template:
        out["st"] = spec.style  # the canonical caption's missing style clause means "plain"
    return out


def world_words() -> list[str]:
    return sorted(set(EXTRA_WORDS.split()) | set(shapes.SHAPES) | set(shapes.COLOURS) | set(shapes.BACKGROUNDS) | set(shapes.STYLES))


@lru_cache(maxsize=1)
def _simple_tokenizer():
    import open_clip

    return open_clip.SimpleTokenizer(context_length=CONTEXT_LENGTH)


def world_token_ids() -> list[int]:
    """[pad 0, UNK slot, sorted ids of the world's BPE tokens incl. start/end of text]."""
    tok = _simple_tokenizer()
    ids = {tok.sot_token_id, tok.eot_token_id}
    for w in world_words():
        ids.update(tok.encode(w))
    return [0, -1] + sorted(ids)


class CompactTokenizer:
    """open_clip's tokenizer followed by a lookup into the world's compact id table."""

    UNK = 1

    def __init__(self, token_ids: Sequence[int], context_length: int = CONTEXT_LENGTH):
        import open_clip

        self.tokenizer = open_clip.SimpleTokenizer(context_length=context_length)
        self.token_ids = list(token_ids)
        lut = torch.full((len(self.tokenizer.encoder),), self.UNK, dtype=torch.long)
        for compact, full in enumerate(self.token_ids):
            if full >= 0:
                lut[full] = compact
        self.lut = lut

    def __call__(self, texts: Sequence[str]) -> Tensor:
        return self.lut[self.tokenizer(list(texts))]


@dataclass
class ClipRecipe:
    """Everything that determines a mini CLIP (hashed into provenance via recipe.json)."""

    role: str  # "encoder" | "judge"
    seed: int
    steps: int = 3000
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.05
    warmup: int = 100
    images_per_spec: int = 24
    heldout_fraction: float = 0.125  # attribute combinations never shown in training (zero-shot eval)
    arch: dict = field(default_factory=lambda: json.loads(json.dumps(ARCH)))

    def templates(self) -> tuple[str, ...]:
        return ENCODER_TEMPLATES if self.role == "encoder" else JUDGE_TEMPLATES

    def to_dict(self) -> dict:
        return asdict(self)


def heldout_specs(fraction: float = 0.125, seed: int = 1234) -> list[shapes.ShapeSpec]:
    """A fixed set of attribute combinations both CLIPs never train on."""
    specs = shapes.all_specs()
    rng = random.Random(seed)
    return sorted(rng.sample(specs, int(len(specs) * fraction)), key=specs.index)


class MiniClip:
    """An open_clip model + compact tokenizer; saves/loads in open_clip's local-dir layout."""

    def __init__(self, model, token_ids: Sequence[int], name: str):
        self.model = model
        self.tokenizer = CompactTokenizer(token_ids, model.context_length)
        self.name = name
        self.mean = torch.tensor(PREPROCESS["mean"]).view(1, 3, 1, 1)
        self.std = torch.tensor(PREPROCESS["std"]).view(1, 3, 1, 1)

    @classmethod
    def create(cls, arch: dict, token_ids: Sequence[int], name: str, seed: int) -> "MiniClip":
        from open_clip.model import CLIP

        torch.manual_seed(seed)
        cfg = json.loads(json.dumps(arch))
        cfg["text_cfg"]["vocab_size"] = len(token_ids)
        return cls(CLIP(**cfg), token_ids, name)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def image_features(self, images01: Tensor) -> Tensor:
        x = images01.float()
        if x.shape[-1] != shapes.SIZE or x.shape[-2] != shapes.SIZE:
            x = F.interpolate(x, size=(shapes.SIZE, shapes.SIZE), mode="area")
        x = (x.clamp(0, 1) - self.mean.to(x.device)) / self.std.to(x.device)
        return self.model.encode_image(x.to(self.device))

    def text_features(self, texts: Sequence[str]) -> Tensor:
        return self.model.encode_text(self.tokenizer(texts).to(self.device))

    def token_states(self, texts: Sequence[str]) -> Tensor:
        """Per-token hidden states of the text tower (after ln_final, before pooling): B×L×width."""
        m = self.model
        tokens = self.tokenizer(texts).to(self.device)
        x = m.token_embedding(tokens) + m.positional_embedding
        x = m.transformer(x, attn_mask=m.attn_mask)
        return m.ln_final(x)

    def save(self, path, extra: dict | None = None) -> None:
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        cfg = json.loads(json.dumps(ARCH))
        cfg["text_cfg"]["vocab_size"] = len(self.tokenizer.token_ids)
        cfg["embed_dim"] = self.model.text_projection.shape[1]
        config = {"model_cfg": cfg, "preprocess_cfg": PREPROCESS}
        (path / "open_clip_config.json").write_text(json.dumps(config, indent=2) + "\n")
        (path / "token_ids.json").write_text(json.dumps({"name": self.name, "token_ids": self.tokenizer.token_ids, **(extra or {})}) + "\n")
        state = {k: v.detach().contiguous().cpu() for k, v in self.model.state_dict().items()}
        save_file(state, str(path / "open_clip_model.safetensors"))

    @classmethod
    def load(cls, path, device="cpu", name: str | None = None) -> "MiniClip":
        import open_clip

        path = Path(path)
        if not (path / "open_clip_model.safetensors").exists() or not (path / "token_ids.json").exists():
            raise MissingWeightsError(f"mini CLIP missing at {path}; recreate it with `unlearn-bench pretrain mini-shapes-encoder` (or mini-shapes-judge)")
        meta = json.loads((path / "token_ids.json").read_text())
        model = open_clip.create_model(f"local-dir:{path}", device=device)
        return cls(model.eval().requires_grad_(False), meta["token_ids"], name or meta.get("name", path.name))


class OpenClipTextEncoder:
    """TextEncoder protocol over a mini CLIP's text tower: per-token hidden states (B×16×64)."""

    def __init__(self, clip: MiniClip, name: str | None = None):
        self.clip = clip
        self.clip.model.eval().requires_grad_(False)
        self.name = name or clip.name

    @torch.no_grad()
    def encode(self, prompts: Sequence[str]) -> Tensor:
        return self.clip.token_states(list(prompts))

    def to(self, device) -> "OpenClipTextEncoder":
        self.clip.model.to(device)
        return self

    def save_to(self, root) -> None:
        self.clip.save(Path(root) / "text_encoder")

    @classmethod
    def load_from(cls, root, device="cpu", name: str | None = None, **_) -> "OpenClipTextEncoder":
        return cls(MiniClip.load(Path(root) / "text_encoder", device=device), name=name)


class MiniClipJudge:
    """ClipJudge contract over a mini CLIP: L2-normalised image and text embeddings."""

    def __init__(self, clip: MiniClip):
        self.clip = clip
        self.name = clip.name

    @torch.no_grad()
    def encode_images(self, images01: Tensor, batch_size: int = 512) -> Tensor:
        return torch.cat([F.normalize(self.clip.image_features(images01[i : i + batch_size]).float(), dim=-1).cpu()
                          for i in range(0, len(images01), batch_size)])

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> Tensor:
        return F.normalize(self.clip.text_features(list(texts)).float(), dim=-1).cpu()


# -- training ------------------------------------------------------------------------------
def multi_positive_loss(img: Tensor, txt: Tensor, positive: Tensor, logit_scale: Tensor) -> Tensor:
    """Symmetric InfoNCE where every caption consistent with an image counts as a positive.

    Partial captions ("a circle") describe many images of a batch; plain one-hot CLIP targets
    would push those true matches apart.
    """
    logits = logit_scale * F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T
    target = positive.float()
    i2t = -(target / target.sum(1, keepdim=True) * logits.log_softmax(1)).sum(1).mean()
    t2i = -(target.T / target.T.sum(1, keepdim=True) * logits.T.log_softmax(1)).sum(1).mean()
    return (i2t + t2i) / 2


def train_mini_clip(recipe: ClipRecipe, name: str, progress=None) -> MiniClip:
    torch.manual_seed(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    held = set(heldout_specs(recipe.heldout_fraction))
    specs = [s for s in shapes.all_specs() if s not in held]
    pool_specs = [s for s in specs for _ in range(recipe.images_per_spec)]
    pool_seeds = [1000 * recipe.seed + i for i in range(len(pool_specs))]
    pool = torch.from_numpy(shapes.draw_batch(pool_specs, pool_seeds))
    clip = MiniClip.create(recipe.arch, world_token_ids(), name, recipe.seed)
    model = clip.model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / recipe.warmup) * 0.5 * (1 + math.cos(math.pi * min(s, recipe.steps) / recipe.steps))
    )
    templates = recipe.templates()
    keys = ("c", "s", "b", "st")
    for step in range(recipe.steps):
        idx = rng.integers(0, len(pool_specs), recipe.batch_size)
        batch_specs = [pool_specs[i] for i in idx]
        tmpl = [templates[j] for j in rng.integers(0, len(templates), recipe.batch_size)]
        texts = [fill(t, s) for t, s in zip(tmpl, batch_specs)]
        # positive[i, j]: image i has every attribute caption j states
        attrs = np.array([[getattr(s, a) for a in ("colour", "shape", "background", "style")] for s in batch_specs])
        positive = np.ones((len(idx), len(idx)), bool)
        for j, (t, s) in enumerate(zip(tmpl, batch_specs)):
            for k, v in mentioned(t, s).items():
                positive[:, j] &= attrs[:, keys.index(k)] == v
        x = pool[torch.from_numpy(idx)]
        loss = multi_positive_loss(clip.image_features(x), clip.text_features(texts), torch.from_numpy(positive),
                                   model.logit_scale.exp().clamp(max=100))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if progress is not None:
            progress(step, float(loss.detach()))
    model.eval().requires_grad_(False)
    return clip


ZERO_SHOT_LABELS = {
    "shape": ("s", [f"a {s}" for s in shapes.SHAPES]),
    "colour": ("c", [f"a {c} shape" for c in shapes.COLOURS]),
    "background": ("b", [f"a shape on a {b} background" for b in shapes.BACKGROUNDS]),
    "style": ("st", [f"a shape in {st} style" for st in shapes.STYLES]),
}


def zero_shot_accuracy(judge: MiniClipJudge, specs: Sequence[shapes.ShapeSpec], images01: Tensor) -> dict[str, float]:
    """Per-attribute zero-shot accuracy, plus retrieval of the exact canonical caption among all 576."""
    emb = judge.encode_images(images01)
    fields = {"s": "shape", "c": "colour", "b": "background", "st": "style"}
    vocab = {"s": shapes.SHAPES, "c": list(shapes.COLOURS), "b": list(shapes.BACKGROUNDS), "st": shapes.STYLES}
    out = {}
    for what, (k, labels) in ZERO_SHOT_LABELS.items():
        pred = (emb @ judge.encode_texts(labels).T).argmax(1)
        truth = torch.tensor([list(vocab[k]).index(getattr(s, fields[k])) for s in specs])
        out[what] = float((pred == truth).float().mean())
    every = shapes.all_specs()
    caps = judge.encode_texts([shapes.caption(s) for s in every])
    pred = (emb @ caps.T).argmax(1)
    truth = torch.tensor([every.index(s) for s in specs])
    out["caption_576way"] = float((pred == truth).float().mean())
    return out


def heldout_eval_set(per_spec: int = 4) -> tuple[list[shapes.ShapeSpec], Tensor]:
    """Held-out combinations drawn with seeds no training pool uses."""
    specs = [s for s in heldout_specs() for _ in range(per_spec)]
    seeds = seeds_for(len(specs), SHAPES_HELDOUT_SEED)
    return specs, torch.from_numpy(shapes.draw_batch(specs, seeds))


def pretrain_clip(recipe: ClipRecipe, out: Path, name: str) -> dict:
    t0 = time.time()
    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    clip = train_mini_clip(recipe, name)
    seconds = time.time() - t0
    if out.exists():
        shutil.rmtree(out)
    clip.save(out)
    specs, images = heldout_eval_set()
    acc = zero_shot_accuracy(MiniClipJudge(MiniClip.load(out, name=name)), specs, images)
    return {"seconds": round(seconds, 1), "zero_shot_heldout": {k: round(v, 4) for k, v in acc.items()},
            "heldout_images": len(specs)}
