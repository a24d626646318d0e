"""Name-based parameter subsets (ESD-u, ESD-x, the class-model fallback) for diffusers UNets.

Pure functions of parameter names. ESD's reference (rohitgandikota/erasing train-scripts/train-esd.py,
CompVis names) trains, for
  noxattn (ESD-u): every parameter except `'attn2' in name`, `'time_embed' in name` and
                   `name.startswith('out.')` (the final GroupNorm + conv);
  xattn   (ESD-x): `'attn2' in name` only.
In diffusers names: cross-attention = `...attn2...`, CompVis `time_embed` = `time_embedding.*` (its
sinusoidal `time_proj` has no weights; the resnets' `time_emb_proj` are NOT the time embedding and
stay trainable, as CompVis' `emb_layers` do), CompVis `out.0`/`out.2` = `conv_norm_out`/`conv_out`.
(The newer esd_sd.py of the same repository selects Linear/Conv2d modules only — no norms, and the
time-embedding MLP and conv_out included; PROTOCOL.md follows train-esd.py.)

Class-conditional UNets have no cross-attention; ESD-u then trains everything except the time
embedding and the output layers (the class embedding stays trainable). ESD-x is defined by
cross-attention and has no class-model analogue: asking for it there is an error (its method runs on
concept/style tasks only).
"""
from __future__ import annotations

from typing import Iterable

TIME_EMBEDDING_PREFIXES = ("time_embedding.", "time_proj.")
OUTPUT_PREFIXES = ("conv_norm_out.", "conv_out.")


def is_cross_attention(name: str) -> bool:
    """A diffusers cross-attention weight: a module path component named `attn2`."""
    return "attn2" in name.split(".")


def is_time_embedding(name: str) -> bool:
    return name.startswith(TIME_EMBEDDING_PREFIXES)


def is_output_layer(name: str) -> bool:
    return name.startswith(OUTPUT_PREFIXES)


def esd_u_names(names: Iterable[str]) -> list[str]:
    """ESD-u (noxattn): all but cross-attention, time embedding, conv_norm_out, conv_out."""
    return [n for n in names if not (is_cross_attention(n) or is_time_embedding(n) or is_output_layer(n))]


def esd_x_names(names: Iterable[str]) -> list[str]:
    """ESD-x (xattn): cross-attention (`attn2`) only."""
    return [n for n in names if is_cross_attention(n)]


def class_fallback_names(names: Iterable[str]) -> list[str]:
    """Class-conditional models (no cross-attention): all but time embedding and output layers."""
    return [n for n in names if not (is_time_embedding(n) or is_output_layer(n))]


def esd_subset(names: Iterable[str], variant: str, class_conditional: bool) -> tuple[str, list[str]]:
    """(subset label, selected names in model order) for `variant` in {"esd-u", "esd-x"}."""
    names = list(names)
    if variant not in ("esd-u", "esd-x"):
        raise ValueError(f"unknown ESD variant {variant!r}; use esd-u or esd-x")
    if class_conditional:
        if variant == "esd-x":
            raise ValueError("esd-x trains cross-attention only; a class-conditional model has none (use esd-u)")
        return "class-fallback (all but time embedding and output layers)", class_fallback_names(names)
    if variant == "esd-u":
        return "esd-u (all but attn2, time embedding, conv_norm_out, conv_out)", esd_u_names(names)
    return "esd-x (attn2 only)", esd_x_names(names)
