"""Unlearned models as artifacts: saved by a job, loaded back for evaluation, or brought from elsewhere.

A job's artifact is what its method changed — the denoiser (every built-in method edits only the
UNet) — saved as a diffusers `save_pretrained` folder in safetensors, `<artifact>/unet/`, so
`StableDiffusionPipeline.from_pretrained(base, unet=UNet2DConditionModel.from_pretrained(artifact,
subfolder="unet"))` loads it, plus `manifest.json` naming the task, its options, the target, the
base checkpoints' digests, the job and the weights' digest. `run --save-models` keeps them under
`RESULTS/models/<job id>/`; `evaluate` reads them back, or a model unlearned elsewhere.

External weights come as the field's authors release them: a diffusers UNet folder (`config.json`
+ `diffusion_pytorch_model.safetensors`, or a folder with a `unet/` one), a single `.safetensors`
state dict, or a `.pt`/`.pth`/`.bin`/`.ckpt` state dict (loaded with `weights_only=True`: no code
runs). A state dict may hold a subset of the UNet's parameters (e.g. only cross-attention, as
ESD-x and UCE change): the rest stay the base model's. Names or shapes that do not fit the task's
UNet are one error.
"""
from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path

import torch

from bench.core.atomic import write_text_atomic
from bench.core.errors import ConfigError
from bench.core.hashing import state_dict_digest

MODELS_DIR = "models"
MANIFEST = "manifest.json"
ARTIFACT_VERSION = 1
STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
WEIGHT_NAMES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


class ArtifactError(ConfigError):
    """An artifact or external checkpoint that cannot be evaluated against the task (one line)."""


def weights_digest(state: dict) -> str:
    return state_dict_digest(state, 64)


def save_artifact(denoiser: torch.nn.Module, dest: Path, manifest: dict) -> dict:
    """The denoiser as `dest/unet/` (safetensors) and `dest/manifest.json`; returns the record's
    `artifact` entry: path (relative to the results directory when given as such), sha256, bytes."""
    dest = Path(dest)
    unet_dir = dest / "unet"
    unet_dir.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu") for k, v in denoiser.state_dict().items()}
    denoiser.save_pretrained(unet_dir, safe_serialization=True)
    digest = weights_digest(state)
    manifest = {"artifact_version": ARTIFACT_VERSION, "denoiser": "unet", "weights_sha256": digest,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), **manifest}
    write_text_atomic(dest / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True, default=str) + "\n")
    size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
    return {"sha256": digest, "bytes": size}


def read_manifest(artifact: Path) -> dict | None:
    path = Path(artifact) / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"artifact {artifact}: its {MANIFEST} is unreadable ({exc})") from None
    if not isinstance(manifest, dict):
        raise ArtifactError(f"artifact {artifact}: its {MANIFEST} is not a mapping")
    return manifest


def _weights_file(folder: Path) -> Path | None:
    for sub in ("", "unet"):
        for name in WEIGHT_NAMES:
            if (folder / sub / name).is_file():
                return folder / sub / name
    return None


def load_state_dict(source: str | Path) -> tuple[dict, str]:
    """(state dict, format) of an artifact or external checkpoint; tensors only, no code run."""
    path = Path(source).expanduser()
    if not path.exists():
        raise ArtifactError(f"no model at {path}: pass a diffusers UNet folder, a .safetensors file or a .pt state dict")
    if path.is_dir():
        weights = _weights_file(path)
        if weights is None:
            raise ArtifactError(f"{path} holds no diffusers UNet ({' or '.join(WEIGHT_NAMES)}, in it or in unet/)")
        fmt = "diffusers folder"
    else:
        weights, fmt = path, ("safetensors" if path.suffix == ".safetensors" else "state dict")
    try:
        if weights.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(weights))
        elif weights.suffix in STATE_DICT_SUFFIXES:
            state = torch.load(weights, map_location="cpu", weights_only=True)
        else:
            raise ArtifactError(f"{weights}: unknown weight format {weights.suffix!r} (.safetensors, {', '.join(STATE_DICT_SUFFIXES)})")
    except ArtifactError:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated file, pickle with code, not a checkpoint
        raise ArtifactError(f"{weights} is unreadable as weights: {type(exc).__name__}: {' '.join(str(exc).split())[:200]}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # a Lightning-style checkpoint
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ArtifactError(f"{weights} is not a state dict of tensors")
    return state, fmt


def apply_state_dict(denoiser: torch.nn.Module, state: dict, where: str) -> int:
    """Load `state` (all or part of the denoiser's parameters) into `denoiser`; returns how many
    tensors it replaced. Unknown names or other shapes: ArtifactError naming a few."""
    own = denoiser.state_dict()
    unknown = [k for k in state if k not in own]
    if unknown:
        hint = " (CompVis/LDM naming: convert it to diffusers' with diffusers' conversion script first)" \
            if any(k.startswith(("model.diffusion_model.", "diffusion_model.")) for k in unknown) else ""
        raise ArtifactError(f"{where} does not fit the task's UNet: {len(unknown)} parameter name(s) it does not have, "
                            f"e.g. {', '.join(unknown[:3])}{hint}")
    wrong = [k for k in state if state[k].shape != own[k].shape]
    if wrong:
        k = wrong[0]
        raise ArtifactError(f"{where} does not fit the task's UNet: {len(wrong)} shape mismatch(es), e.g. {k}: "
                            f"{tuple(state[k].shape)} vs {tuple(own[k].shape)} (another architecture or base model)")
    if not all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
        raise ArtifactError(f"{where} holds NaN or infinite weights")
    with torch.no_grad():
        for k, v in state.items():
            own[k].copy_(v.to(own[k].dtype))
    return len(state)


def check_manifest(manifest: dict, task_name: str, checkpoints: dict, where: str) -> None:
    """An artifact made for another task or from another base checkpoint is refused by name."""
    if manifest.get("task") != task_name:
        raise ArtifactError(f"{where} was unlearned on task {manifest.get('task')!r}, not {task_name!r}")
    made = manifest.get("base_checkpoints") or {}
    for name, digest in made.items():
        if name in checkpoints and checkpoints[name] != digest:
            raise ArtifactError(f"{where} was unlearned from base {name} {digest}, but the task loads {checkpoints[name]} (another base model)")


def artifact_dir(out_dir, job_id: str) -> Path:
    return Path(out_dir) / MODELS_DIR / job_id
