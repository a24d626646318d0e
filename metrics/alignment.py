"""AS (alignment score, RGD's definition) and the open_clip judge SD tasks use.

AS = mean cosine of L2-normalised image and prompt embeddings (no ×100, no clamp), on the
D_r,train and D_r,test prompts: how well the unlearned model still follows remain prompts.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.core.errors import ConfigError, MissingWeightsError
from bench.core.fetch_registry import FETCH_COMMAND, OPENCLIP_FILE, OPENCLIP_PRETRAINED, OPENCLIP_REPO
from bench.core.instances import PerInstance, instance_ids
from metrics.base import Metric, generated, register_metric

OPENCLIP_HF_REPO = {OPENCLIP_PRETRAINED: OPENCLIP_REPO}
OPENCLIP_FILES = (OPENCLIP_FILE, "open_clip_pytorch_model.bin")  # the first is what `unlearn-bench fetch` gets


def paired_cosines(image_emb: Tensor, text_emb: Tensor) -> Tensor:
    """Cosine per (image, prompt) pair of row-normalised embeddings (raw, in [-1, 1])."""
    if image_emb.shape != text_emb.shape:
        raise ValueError(f"paired embeddings differ in shape: {tuple(image_emb.shape)} vs {tuple(text_emb.shape)}")
    return (F.normalize(image_emb.float(), dim=-1) * F.normalize(text_emb.float(), dim=-1)).sum(-1)


def alignment_score(image_emb: Tensor, text_emb: Tensor) -> float:
    """Mean paired cosine (AS)."""
    return float(paired_cosines(image_emb, text_emb).mean())


def resolve_openclip_weights(model_name: str, pretrained: str, weights: str | None = None) -> str:
    """A local weights file: explicit path, $UNLEARN_BENCH_OPENCLIP_WEIGHTS, or the HF cache (offline)."""
    env = os.environ.get("UNLEARN_BENCH_OPENCLIP_WEIGHTS")
    given = weights or env
    if given:
        if not Path(given).expanduser().is_file():
            where = "the task option clip_weights" if weights else "$UNLEARN_BENCH_OPENCLIP_WEIGHTS"
            hint = f"; unset it or drop it to use the one `{FETCH_COMMAND}` gets" if repo_of(model_name, pretrained) else ""
            raise MissingWeightsError(f"open_clip weights file {given} does not exist ({where}){hint}")
        return str(Path(given).expanduser())
    repo = OPENCLIP_HF_REPO.get((model_name, pretrained))
    if repo is not None:
        from huggingface_hub import hf_hub_download

        for fname in OPENCLIP_FILES:
            try:
                return hf_hub_download(repo, fname, local_files_only=True)
            except Exception:  # noqa: BLE001 - any miss means "not in the cache"
                continue
    if repo is None:
        raise MissingWeightsError(f"open_clip {model_name} {pretrained} has no known hub repository to read offline; pass its "
                                  "weights file (task option clip_weights or UNLEARN_BENCH_OPENCLIP_WEIGHTS)")
    from huggingface_hub import constants

    raise MissingWeightsError(
        f"open_clip {model_name} {pretrained} weights not found: {OPENCLIP_FILES[0]} of {repo} is not in the Hugging Face "
        f"cache {constants.HF_HUB_CACHE}; get it with `{FETCH_COMMAND}` or set UNLEARN_BENCH_OPENCLIP_WEIGHTS to a local file"
    )


def repo_of(model_name: str, pretrained: str) -> str | None:
    return OPENCLIP_HF_REPO.get((model_name, pretrained))


# how the judge turns generated images into its input (the SD task option clip_preprocess)
PREPROCESS = {
    "tensor": "",  # float images, resized by torch (bicubic, no antialiasing), cropped and normalised: this suite's
    "open_clip": "open_clip preprocess of 8-bit images",  # the reference's: saved PNGs through open_clip's own PIL transform
}


def to_pil_images(images01: Tensor) -> list:
    """Images in [0, 1] as the 8-bit PIL images a pipeline saves: ×255, rounded (diffusers' numpy_to_pil), RGB."""
    from PIL import Image

    arr = (images01.float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    return [Image.fromarray(a) for a in arr]  # H×W×3 uint8: RGB


class OpenClipJudge:
    """open_clip model as a ClipJudge; weights only from a local file or the offline cache.

    `preprocess` (PREPROCESS): "tensor" resizes the float images in torch; "open_clip" quantises them to 8 bits and runs
    open_clip's own evaluation transform on PIL images, the one create_model_and_transforms returns and the reference
    applies to its saved PNGs (PIL's bicubic, antialiased on downscaling). The name says which when it is not "tensor"."""

    def __init__(self, model_name: str = "ViT-B-32", pretrained: str = "laion2b_s34b_b79k", weights: str | None = None, device="cpu",
                 preprocess: str = "tensor"):
        import open_clip
        from open_clip.transform import PreprocessCfg, image_transform_v2

        if preprocess not in PREPROCESS:
            raise ConfigError(f"clip_preprocess must be one of {', '.join(PREPROCESS)}, not {preprocess!r}")

        path = resolve_openclip_weights(model_name, pretrained, weights)
        config = Path(path).with_name(f"{model_name}.json")  # an architecture open_clip does not ship: beside its weights
        if model_name not in open_clip.list_models() and config.is_file():
            open_clip.add_model_config(config)
        try:
            model = open_clip.create_model(model_name, pretrained=path, device=device)
        except RuntimeError as e:
            raise MissingWeightsError(f"open_clip weights at {path} do not fit {model_name}: {e}") from e
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = open_clip.get_tokenizer(model_name)
        self.preprocess = preprocess
        self.name = f"{model_name} {pretrained}" + (f", {PREPROCESS[preprocess]}" if PREPROCESS[preprocess] else "")
        cfg = self.model.visual.preprocess_cfg if hasattr(self.model.visual, "preprocess_cfg") else {}
        # open_clip's evaluation transform, built as create_model_and_transforms builds its preprocess_val
        self.transform = image_transform_v2(PreprocessCfg(**cfg), is_train=False) if preprocess == "open_clip" else None
        size = cfg.get("size", self.model.visual.image_size)
        self.size = size if isinstance(size, int) else size[0]
        self.mean = torch.tensor(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg.get("std", open_clip.OPENAI_DATASET_STD)).view(1, 3, 1, 1)

    @property
    def device(self):
        return next(self.model.parameters()).device

    def pixels(self, images01: Tensor) -> Tensor:
        """The model's input for images in [0, 1], by the judge's `preprocess`."""
        if self.transform is not None:
            return torch.stack([self.transform(im) for im in to_pil_images(images01)]).to(self.device)
        x = images01.float()
        # open_clip's eval transform on float tensors: resize shorter side (bicubic) + centre crop + normalise
        h, w = x.shape[-2:]
        s = self.size / min(h, w)
        x = F.interpolate(x, size=(max(self.size, round(h * s)), max(self.size, round(w * s))), mode="bicubic", align_corners=False)
        top, left = (x.shape[-2] - self.size) // 2, (x.shape[-1] - self.size) // 2
        x = x[..., top : top + self.size, left : left + self.size].clamp(0, 1)
        return ((x - self.mean) / self.std).to(self.device)

    @torch.no_grad()
    def encode_images(self, images01: Tensor, batch_size: int = 64) -> Tensor:
        out = []
        for i in range(0, len(images01), batch_size):
            x = self.pixels(images01[i : i + batch_size])
            out.append(F.normalize(self.model.encode_image(x).float(), dim=-1).cpu())
        return torch.cat(out)

    @torch.no_grad()
    def encode_texts(self, texts: Sequence[str]) -> Tensor:
        tokens = self.tokenizer(list(texts)).to(self.device)
        return F.normalize(self.model.encode_text(tokens).float(), dim=-1).cpu()


@register_metric
class Alignment(Metric):
    """AS-train / AS-test: CLIP alignment of the unlearned model's images with remain prompts.

    Task supplies `evaluation.clip_judge` (ClipJudge) and eval sets "remain_train", "remain_test".
    """

    name = "alignment"
    requires = ("clip_judge", "eval_sets:remain_train", "eval_sets:remain_test")

    def columns(self, inst):
        j = inst.evaluation.clip_judge.name
        out = {}
        for which, label in (("remain_train", "AS-train"), ("remain_test", "AS-test")):
            n = len(inst.evaluation.eval_sets[which][0])
            out[f"{label} ({j}, raw cosine, n={n})"] = "↑"
        return out

    def compute(self, inst, unlearned, original, ctx):
        judge = inst.evaluation.clip_judge
        out = {}
        for col, which in zip(self.columns(inst), ("remain_train", "remain_test")):
            prompts, seeds = inst.evaluation.eval_sets[which]
            images = generated(inst, unlearned, which, ctx)
            cos = paired_cosines(judge.encode_images(images), judge.encode_texts(list(prompts)))
            out[col] = PerInstance.of(which, instance_ids(prompts, seeds), cos.tolist())
        return out
import metrics.zero_shot  # noqa: E402,F401 - registers zero-shot UA next to the judge it uses
