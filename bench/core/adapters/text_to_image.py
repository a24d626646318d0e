"""Text-to-image adapter: diffusers UNet2DConditionModel + frozen text encoder + optional VAE.

Stable Diffusion 1.x (latent, VAE) and the mini text world (pixel, no VAE) go through the same
class, the same save layout (the diffusers SD layout plus `unlearn_bench.json`) and the same
`from_pretrained` loading path, so tests on tiny models exercise what real checkpoints use.
"""
from __future__ import annotations

import copy
import importlib
import json
from pathlib import Path
from typing import Sequence

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from torch import Tensor

from bench.core.adapters.base import DiffusionModel
from bench.core.adapters.text_encoders import HFCLIPTextEncoder, TextEncoder
from bench.core.errors import ConfigError, MissingWeightsError
from bench.core.fetch_registry import FETCH_COMMAND, SD14_FILES

SD14 = "CompVis/stable-diffusion-v1-4"


def missing_sd_file(root: Path) -> str | None:
    """The first file of the SD layout the loader reads that `root` lacks (a .bin stands in for a .safetensors)."""
    for rel in SD14_FILES:
        if rel == "model_index.json":
            continue  # read by pipelines, not by this loader (subfolders)
        p = root / rel
        alt = p.with_name("pytorch_model.bin") if p.name == "model.safetensors" else p.with_suffix(".bin")
        if not p.is_file() and not (p.suffix == ".safetensors" and alt.is_file()):
            return rel
    return None


def sd_missing_message(repo_or_path: str, exc: BaseException) -> str:
    """One line: which file is missing where, and how to get it."""
    local = Path(repo_or_path).expanduser()
    if local.exists():
        gap = missing_sd_file(local)
        what = f"{local / gap} is missing" if gap else f"the weights at {local} do not load ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        return (f"Stable Diffusion weights not found: {what} (an SD 1.x diffusers layout: unet/, vae/, text_encoder/, tokenizer/, "
                f"scheduler/); the default model, {SD14}, is fetched with `{FETCH_COMMAND}`")
    from huggingface_hub import constants

    snapshot = _local_snapshot(repo_or_path)
    gap = missing_sd_file(Path(snapshot)) if snapshot else None
    what = (f"{gap} of {repo_or_path} is not in the Hugging Face cache {snapshot}" if gap
            else f"{repo_or_path} is not in the Hugging Face cache {constants.HF_HUB_CACHE}" if not snapshot
            else f"{repo_or_path} in the Hugging Face cache {snapshot} does not load ({type(exc).__name__})")
    how = (f"get it with `{FETCH_COMMAND}`" if repo_or_path == SD14
           else f"put it there on a connected machine (`hf download {repo_or_path}`) or pass a local SD 1.x directory; "
                f"`{FETCH_COMMAND}` gets the default {SD14}")
    return f"Stable Diffusion weights not found: {what}; {how} (offline here)"


def _local_snapshot(repo_or_path: str) -> str | None:
    """The directory a hub id or path loads from, or None when it is not on disk (no network)."""
    local = Path(repo_or_path).expanduser()
    if local.is_dir():
        return str(local)
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(repo_or_path, local_files_only=True)
    except Exception:  # noqa: BLE001 - not cached: the uncached loader raises MissingWeightsError
        return None


DEFAULT_TEXT_ENCODER = "bench.core.adapters.text_encoders:HFCLIPTextEncoder"
# the text-encoder classes a checkpoint's unlearn_bench.json may name (module:qualname)
TEXT_ENCODERS = frozenset({DEFAULT_TEXT_ENCODER, "tasks.mini.shapes_clip:OpenClipTextEncoder"})

class TextToImageModel(DiffusionModel):
    kind = "text"

    def __init__(
        self,
        unet: UNet2DConditionModel,
        text_encoder: TextEncoder,
        scheduler: DDPMScheduler,
        vae: AutoencoderKL | None = None,
        source: str = "",
    ):
        if not isinstance(text_encoder, TextEncoder):
            raise TypeError(f"text encoder {type(text_encoder).__name__} does not implement the TextEncoder protocol")
        self.denoiser = unet
        self.text_encoder = text_encoder
        self.noise_scheduler = scheduler
        self.vae = vae.eval().requires_grad_(False) if vae is not None else None
        self.source = source
        cfg = unet.config
        size = cfg.sample_size if isinstance(cfg.sample_size, int) else cfg.sample_size[0]
        self.sample_shape = (cfg.in_channels, size, size)
        self._cache: dict[str, Tensor] = {}

    # -- conditioning: frozen encoder, so embeddings are cached per prompt string --------------
    def condition(self, keys: Sequence) -> Tensor:
        prompts = [str(k) if k is not None else "" for k in keys]
        missing = list(dict.fromkeys(p for p in prompts if p not in self._cache))
        for i in range(0, len(missing), 64):
            chunk = missing[i : i + 64]
            emb = self.text_encoder.encode(chunk).detach()
            for p, e in zip(chunk, emb):
                self._cache[p] = e
        if not prompts:
            raise ValueError("condition() needs at least one prompt")
        return torch.stack([self._cache[p] for p in prompts]).to(self.device)

    def null_condition(self, n: int) -> Tensor:
        return self.condition([""]).expand(n, -1, -1)

    def predict_noise(self, x_t: Tensor, t: Tensor, cond: Tensor) -> Tensor:
        if t.ndim == 0:
            t = t.expand(x_t.shape[0])
        dtype = self.denoiser.dtype  # float16 SD weights take float32 noise and return float32
        return self._denoise(x_t.to(dtype), t, encoder_hidden_states=cond.to(dtype)).sample.to(x_t.dtype)

    # -- latent space ----------------------------------------------------------------------
    @property
    def scaling_factor(self) -> float:
        return float(getattr(self.vae.config, "scaling_factor", 0.18215)) if self.vae is not None else 1.0

    @property
    def image_size(self) -> int:
        if self.vae is None:
            return self.sample_shape[1]
        return self.sample_shape[1] * 2 ** (len(self.vae.config.block_out_channels) - 1)

    def encode(self, images: Tensor) -> Tensor:
        if self.vae is None:
            return images
        images = images.to(self.device, dtype=next(self.vae.parameters()).dtype)
        with torch.no_grad():
            return self.vae.encode(images).latent_dist.mean * self.scaling_factor

    def decode(self, x: Tensor) -> Tensor:
        if self.vae is None:
            return x
        with torch.no_grad():
            return self.vae.decode(x.to(dtype=next(self.vae.parameters()).dtype) / self.scaling_factor).sample

    def to(self, device) -> "TextToImageModel":
        self.denoiser.to(device)
        self.text_encoder.to(device)
        if self.vae is not None:
            self.vae.to(device)
        self._cache = {k: v.to(device) for k, v in self._cache.items()}
        return self

    # -- persistence -----------------------------------------------------------------------
    def save(self, path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.denoiser.save_pretrained(path / "unet")
        self.noise_scheduler.save_pretrained(path / "scheduler")
        if self.vae is not None:
            self.vae.save_pretrained(path / "vae")
        enc = self.text_encoder
        if not hasattr(enc, "save_to") or not hasattr(type(enc), "load_from"):
            raise TypeError(f"text encoder {type(enc).__name__} has no save_to/load_from: cannot save the adapter")
        enc.save_to(path)
        meta = {
            "kind": self.kind,
            "text_encoder": f"{type(enc).__module__}:{type(enc).__qualname__}",
            "text_encoder_name": enc.name,
            "vae": self.vae is not None,
            "source": self.source,
        }
        (path / "unlearn_bench.json").write_text(json.dumps(meta, indent=2) + "\n")

    @classmethod
    def load(cls, path, device="cpu") -> "TextToImageModel":
        """Load a saved adapter directory (or an SD layout); read from disk once per process."""
        from bench.core.adapters.model_cache import cached_load

        if not (Path(path) / "unlearn_bench.json").exists():
            return cls.from_pretrained_sd(str(path), device=device)
        return cached_load("text", path, device, (), lambda: cls._load_uncached(path, device))

    @classmethod
    def _load_uncached(cls, path, device="cpu") -> "TextToImageModel":
        path = Path(path)
        index = path / "unlearn_bench.json"
        if not index.exists():
            return cls.from_pretrained_sd(str(path), device=device)
        meta = json.loads(index.read_text())
        kind = meta.get("text_encoder", DEFAULT_TEXT_ENCODER)
        if kind not in TEXT_ENCODERS:  # a checkpoint's JSON never names code to import
            raise ConfigError(f"text-to-image checkpoint at {path} names text encoder {kind!r}, not one of the loadable kinds: {', '.join(sorted(TEXT_ENCODERS))}")
        mod, _, qual = kind.partition(":")
        enc_cls = getattr(importlib.import_module(mod), qual)
        try:
            unet = UNet2DConditionModel.from_pretrained(path / "unet", local_files_only=True)
            sched = DDPMScheduler.from_pretrained(path / "scheduler", local_files_only=True)
            vae = AutoencoderKL.from_pretrained(path / "vae", local_files_only=True) if meta.get("vae") else None
            enc = enc_cls.load_from(path, device=device, name=meta.get("text_encoder_name"))
        except (OSError, EnvironmentError) as e:
            raise MissingWeightsError(f"text-to-image checkpoint at {path} is incomplete: {e}") from e
        model = cls(unet.to(device), enc, sched, vae.to(device) if vae is not None else None, meta.get("source", ""))
        return model

    @classmethod
    def from_pretrained_sd(cls, repo_or_path: str = SD14, device="cpu", dtype=None) -> "TextToImageModel":
        """A Stable Diffusion 1.x layout (unet/, text_encoder/, tokenizer/, vae/, scheduler/), offline.

        Read from disk once per process (bench/core/adapters/model_cache.py), keyed by the local directory
        or the hub id's snapshot in the HF cache."""
        from bench.core.adapters.model_cache import cached_load

        return cached_load(
            "sd", _local_snapshot(repo_or_path), device, (str(dtype),),
            lambda: cls._from_pretrained_sd_uncached(repo_or_path, device, dtype),
        )

    @classmethod
    def _from_pretrained_sd_uncached(cls, repo_or_path: str = SD14, device="cpu", dtype=None) -> "TextToImageModel":
        local = Path(repo_or_path).expanduser()
        root = str(local) if local.exists() else repo_or_path
        kw = {"local_files_only": True}
        try:
            unet = UNet2DConditionModel.from_pretrained(root, subfolder="unet", **kw)
            vae = AutoencoderKL.from_pretrained(root, subfolder="vae", **kw)
            sched = DDPMScheduler.from_pretrained(root, subfolder="scheduler", **kw)
            enc = HFCLIPTextEncoder.load_from(root, device=device, name=f"CLIPTextModel({repo_or_path})")
        except (OSError, EnvironmentError, ValueError) as e:
            raise MissingWeightsError(sd_missing_message(repo_or_path, e)) from e
        if dtype is not None:
            unet, vae = unet.to(dtype=dtype), vae.to(dtype=dtype)
            enc.model.to(dtype=dtype)
        return cls(unet.to(device), enc, sched, vae.to(device), source=repo_or_path)

    def cast_for_sampling(self, dtype: torch.dtype) -> "TextToImageModel":
        """The whole pipeline in `dtype`, as diffusers' StableDiffusionPipeline loaded with `torch_dtype` runs it: UNet,
        VAE and text encoder cast copies (the prompts encoded again in `dtype`, in the copy's own cache)."""
        other = super().cast_for_sampling(dtype)
        if self.vae is not None:
            other.vae = copy.deepcopy(self.vae).to(dtype)
        other.text_encoder = copy.deepcopy(self.text_encoder).to(dtype)
        other._cache = {}
        return other

    def fresh_copy(self) -> "TextToImageModel":
        other = super().fresh_copy()
        other._cache = self._cache  # shared on purpose: jobs of one worker encode a prompt once
        return other

    def frozen_copy(self) -> "TextToImageModel":
        other = super().frozen_copy()
        other._cache = dict(self._cache)
        return other

    def trainable_copy(self) -> "TextToImageModel":
        other = super().trainable_copy()
        other._cache = dict(self._cache)
        return other
