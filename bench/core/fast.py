"""Run options that make jobs faster without changing what they compute (beyond a stated tolerance).

One frozen dataclass, resolved per job from the device's defaults plus overrides (a suite/CLI
string or dict, or the `UNLEARN_BENCH_FAST_PATHS` environment variable), applied to a
DiffusionModel in one place (`apply_fast_paths`, called by bench/runner/job.py right after the task
builds the model) and written to the run record. Method code never sees these options: autocast
and compile live inside the adapter's `predict_noise`; SDPA and gradient checkpointing are set on
the denoiser module, so frozen/trainable copies inherit them.

Every option has a CPU test in tests/test_fast_paths.py showing unchanged results within tolerance.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping

import torch
from torch import nn

from bench.core.errors import ConfigError

if TYPE_CHECKING:
    from bench.core.adapters.base import DiffusionModel

ENV_VAR = "UNLEARN_BENCH_FAST_PATHS"
COMPILE_OPTIONS: dict[str, Any] = {}  # extra torch.compile keyword arguments (tests use a cheap backend)
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_OFF = {"", "none", "off", "false", "0", "no", "fp32", "float32"}


@dataclass(frozen=True)
class FastPaths:
    """autocast: "bf16" | "fp16" | None, for the evaluation stage (sampling, judging). fp16 applies to
    no-grad forwards only: training in fp16 needs loss scaling, which would reach into method code.
    train_autocast: the same for the unlearning stage (every forward of the method, with or without
    grad); None = fp32, the references' precision. Reduced-precision unlearning is this explicit,
    recorded option, never a default (`for_unlearning` gives the unlearning stage its options).
    compile: torch.compile the denoiser's forward (first call pays the compilation).
    gradient_checkpointing: recompute activations in backward (memory for SD fine-tuning, ~+30% time).
    sdpa: fused scaled-dot-product attention (AttnProcessor2_0) instead of the classic bmm-softmax-bmm.
    tf32: TensorFloat-32 matmuls/convs for what still runs in fp32 on CUDA.
    """

    autocast: str | None = None
    train_autocast: str | None = None
    compile: bool = False
    gradient_checkpointing: bool = False
    sdpa: bool = True
    tf32: bool = False

    def __post_init__(self) -> None:
        for name in ("autocast", "train_autocast"):
            value = getattr(self, name)
            if value is not None and value not in AUTOCAST_DTYPES:
                raise ConfigError(f"fast path {name} must be one of {sorted(AUTOCAST_DTYPES)} or none, not {value!r}")

    @classmethod
    def default_for(cls, device: torch.device | str) -> "FastPaths":
        """On CUDA: bf16 autocast for evaluation sampling + SDPA; unlearning in fp32 without TF32 (the
        references' precision: the CIFAR loop disables TF32 explicitly). On CPU only SDPA (the library default)."""
        if torch.device(device).type == "cuda":
            return cls(autocast="bf16", train_autocast=None, sdpa=True, tf32=False)
        return cls()

    @classmethod
    def resolve(cls, device: torch.device | str, overrides: "FastPaths | Mapping[str, Any] | str | None" = None) -> "FastPaths":
        """Device defaults, then the environment variable, then explicit overrides (a FastPaths wins outright)."""
        if isinstance(overrides, FastPaths):
            return overrides
        fields = dataclasses.asdict(cls.default_for(device))
        fields.update(parse_overrides(os.environ.get(ENV_VAR, "")))
        fields.update(parse_overrides(overrides))
        return cls(**fields)

    def for_unlearning(self) -> "FastPaths":
        """The options of the unlearning stage: its autocast is `train_autocast` (None: fp32)."""
        return dataclasses.replace(self, autocast=self.train_autocast)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def autocast_dtype(self, training: bool) -> torch.dtype | None:
        dtype = AUTOCAST_DTYPES.get(self.autocast) if self.autocast else None
        if dtype is torch.float16 and training:
            return None
        return dtype


def parse_overrides(spec: "Mapping[str, Any] | str | None") -> dict[str, Any]:
    """'autocast=bf16,compile=1' or a mapping -> typed field values; unknown names are a ConfigError."""
    if spec is None:
        return {}
    if isinstance(spec, str):
        items = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, sep, value = part.partition("=")
            if not sep:
                raise ConfigError(f"fast path option {part!r} must look like name=value")
            items[name.strip().replace("-", "_")] = value.strip()
        spec = items
    known = {f.name: f for f in dataclasses.fields(FastPaths)}
    out: dict[str, Any] = {}
    for name, value in dict(spec).items():
        name = str(name).replace("-", "_")
        if name not in known:
            raise ConfigError(f"unknown fast path option {name!r}; known: {', '.join(known)}")
        if name in ("autocast", "train_autocast"):
            out[name] = None if value is None or str(value).lower() in _OFF else str(value).lower()
        else:
            out[name] = _as_bool(name, value)
    return out


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"fast path option {name}={value!r} must be a boolean")


# -- pieces the adapters and apply_fast_paths use ------------------------------------------------
def autocast_context(fast: FastPaths | None, device: torch.device, weights_dtype: torch.dtype):
    """Mixed precision for one denoiser forward; a no-op for fp32 runs and for half-precision weights."""
    if fast is None or weights_dtype != torch.float32:
        return contextlib.nullcontext()
    dtype = fast.autocast_dtype(training=torch.is_grad_enabled())
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def set_attention(denoiser: nn.Module, sdpa: bool) -> int:
    """Fused SDPA (AttnProcessor2_0) or the classic processor on every diffusers Attention; returns the count.

    Works for UNet2DModel too, which lacks `set_attn_processor`."""
    from diffusers.models.attention_processor import Attention, AttnProcessor, AttnProcessor2_0

    n = 0
    for module in denoiser.modules():
        if isinstance(module, Attention):
            module.set_processor(AttnProcessor2_0() if sdpa else AttnProcessor())
            n += 1
    return n


def attention_processors(denoiser: nn.Module) -> set[str]:
    from diffusers.models.attention_processor import Attention

    return {type(m.processor).__name__ for m in denoiser.modules() if isinstance(m, Attention)}


def apply_fast_paths(model: "DiffusionModel", fast: FastPaths) -> "DiffusionModel":
    """Apply the options to `model` in place (and return it). Copies made afterwards inherit them."""
    set_attention(model.denoiser, fast.sdpa)
    if fast.gradient_checkpointing:
        if not getattr(model.denoiser, "_supports_gradient_checkpointing", False):
            raise ConfigError(f"{type(model.denoiser).__name__} does not support gradient checkpointing")
        model.denoiser.enable_gradient_checkpointing()
    elif getattr(model.denoiser, "is_gradient_checkpointing", False):
        model.denoiser.disable_gradient_checkpointing()
    if model.device.type == "cuda":  # process-wide; "highest" is PyTorch's default (cuDNN convs keep theirs)
        torch.set_float32_matmul_precision("high" if fast.tf32 else "highest")
    model.fast_paths = fast
    model._compiled = None
    return model
