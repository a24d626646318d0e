"""UCE (Gandikota et al., WACV 2024): Unified Concept Editing — a closed-form edit of cross-attention.

Every cross-attention key and value projection W (diffusers `attn2.to_k` / `attn2.to_v`, the
matrices that read the text embedding) is replaced, layer by layer, by the minimiser of

    λ‖W' − W‖² + s_e Σ_erase ‖W' c_i − W c*_i‖² + s_p Σ_preserve ‖W' c_j − W c_j‖²,

    W' = (λW + s_e Σ v*_i c_iᵀ + s_p Σ v_j c_jᵀ) (λI + s_e Σ c_i c_iᵀ + s_p Σ c_j c_jᵀ)⁻¹,

with c_i the token embeddings of an erased prompt, c*_i those of its guide and v* = W c* (the
reference's "replace" technique), c_j the token embeddings of preserved prompts. Seconds, no data.

Reference (rohitgandikota/unified-concept-editing, train-scripts/train_erase.py, `edit_model`):
λ = 0.5, erase_scale 1, preserve_scale 0.1, keys and values edited (`with_to_k=True`), values
from the ORIGINAL W. Erased/guide tokens: aligned at each prompt's last word token, from there to
the end of the padded sequence (last word, EOS, padding); preserved prompts: all tokens.
Guides: nudity → " " (unconditional), artists → "art"; preserved: "" (unsafe) or every other
artist of a 1,734-name list (art).

Here a method sees prompts, not concept names (forget.keys, forget.paired_keys, remain.keys), so
the edit is prompt-level: each distinct forget prompt is erased towards its paired concept-free
twin (`guide="paired"`, the prompt-level analogue of "" for nudity and of a generic for styles),
and the distinct remain prompts plus "" are preserved (`preserve="remain"`). docs/PROTOCOL.md
lists these choices.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch import Tensor, nn

from bench.core.errors import ConfigError
from methods.base import Method, check_choices, register_method
from methods.search_space import LogUniform

Guide = Literal["paired", "empty"]
Preserve = Literal["remain", "empty"]
Span = Literal["last", "differing"]


@dataclass
class UCEHParams:
    """Reference defaults (train_erase.py: lamb=0.5, erase_scale=1, preserve_scale=0.1, with_to_k=True).

    guide: "paired" — erase each forget prompt towards forget.paired_keys (its concept-free twin);
      "empty" — towards "" (the reference's nudity guide, unconditional).
    preserve: "remain" — the distinct remain prompts and ""; "empty" — "" only (reference, unsafe).
    token_span: "last" — the reference's alignment (last word token to the end); "differing" —
      additionally the tokens from the first one where prompt and guide differ, when both have them
      (covers a concept word in the middle of an equal-length prompt).
    edit_keys: edit attn2.to_k as well as attn2.to_v.
    max_preserve: cap on distinct preserved prompts (None: all).
    preserve_scale: None = the reference's rule, max(0.1, 1 / number of preserved prompts): 0.1 with
      many, 1.0 when "" alone is preserved (preserve="empty").
    """

    lamb: float = 0.5
    erase_scale: float = 1.0
    preserve_scale: float | None = None
    guide: Guide = "paired"
    preserve: Preserve = "remain"
    token_span: Span = "last"
    edit_keys: bool = True
    max_preserve: int | None = None

    def __post_init__(self) -> None:
        check_choices(self)
        if self.lamb < 0 or self.erase_scale < 0 or (self.preserve_scale is not None and self.preserve_scale < 0):
            raise ValueError("lamb, erase_scale and preserve_scale must be ≥ 0")


def closed_form_edit(
    W: Tensor, erase_keys: Tensor, erase_values: Tensor, preserve_keys: Tensor, preserve_values: Tensor,
    lamb: float, erase_scale: float, preserve_scale: float,
) -> Tensor:
    """W' = (λW + s_e V_eᵀK_e + s_p V_pᵀK_p)(λI + s_e K_eᵀK_e + s_p K_pᵀK_p)⁻¹ in float64.

    W: out×in; keys: N×in (rows are token embeddings); values: N×out (what W' should output)."""
    dt = W.dtype
    W, Ke, Ve, Kp, Vp = (a.detach().double() for a in (W, erase_keys, erase_values, preserve_keys, preserve_values))
    eye = torch.eye(W.shape[1], dtype=torch.float64, device=W.device)
    mat1 = lamb * W + erase_scale * Ve.T @ Ke + preserve_scale * Vp.T @ Kp
    mat2 = lamb * eye + erase_scale * Ke.T @ Ke + preserve_scale * Kp.T @ Kp
    # mat2 is symmetric: W' = mat1 mat2⁻¹  ⇔  mat2 W'ᵀ = mat1ᵀ
    return torch.linalg.solve(mat2, mat1.T).T.to(dt)


def real_token_counts(text_encoder, prompts: Sequence[str]) -> list[int]:
    """Tokens per prompt including start and end tokens (capped at the context length)."""
    tok = getattr(text_encoder, "tokenizer", None)
    if tok is not None and hasattr(text_encoder, "max_length"):  # transformers CLIPTokenizer (SD)
        enc = tok(list(prompts), padding="max_length", max_length=text_encoder.max_length, truncation=True)
        return [int(sum(m)) for m in enc["attention_mask"]]
    clip = getattr(text_encoder, "clip", None)  # the mini world's open_clip tower (CompactTokenizer)
    if clip is not None and hasattr(clip, "tokenizer"):
        simple = clip.tokenizer.tokenizer
        L = int(simple.context_length)
        return [min(len(simple.encode(p)) + 2, L) for p in prompts]
    raise ConfigError(f"uce: cannot count tokens for text encoder {type(text_encoder).__name__}")


def aligned_spans(old: Tensor, new: Tensor, n_old: int, n_new: int, span: Span = "last") -> tuple[Tensor, Tensor]:
    """Token rows of an erased prompt and its guide that UCE pairs up (both L×D, padded).

    "last" (train_erase.py): from each prompt's last word token (index n − 2) to the end, the longer
    one trimmed at the tail so both spans have the same length. "differing": the same alignment,
    extended backwards to the first token where the two prompts' embeddings differ (a causal text
    encoder gives identical rows before it), as far as both prompts have tokens there."""
    L = old.shape[0]
    f_old, f_new = max(n_old - 2, 0), max(n_new - 2, 0)
    far = max(f_old, f_new)
    back = 0
    if span == "differing":
        diff = (old - new).abs().amax(-1) > 1e-6 * (1 + old.abs().amax())
        first = int(diff.nonzero()[0]) if diff.any() else min(f_old, f_new)
        back = max(0, min(f_old, f_new) - first)
    o = old[f_old - back : L - max(0, far - f_old)]
    n = new[f_new - back : L - max(0, far - f_new)]
    return o, n


def cross_attention_projections(denoiser: nn.Module, edit_keys: bool) -> list[tuple[str, nn.Linear]]:
    """(name, Linear) of every attn2.to_v (and attn2.to_k) in model order."""
    out = []
    for name, module in denoiser.named_modules():
        if name.split(".")[-1] == "attn2":
            out.append((f"{name}.to_v", module.to_v))
            if edit_keys:
                out.append((f"{name}.to_k", module.to_k))
    return out


def uce_keys(model, forget_prompts: Sequence[str], guide_prompts: Sequence[str], preserve_prompts: Sequence[str], span: Span):
    """(erase keys, guide keys, preserve keys) as row matrices of text-encoder token embeddings."""
    enc = model.text_encoder
    n_f, n_g = real_token_counts(enc, forget_prompts), real_token_counts(enc, guide_prompts)
    emb_f, emb_g = model.condition(list(forget_prompts)).float(), model.condition(list(guide_prompts)).float()
    ks, gs = [], []
    for i in range(len(forget_prompts)):
        o, n = aligned_spans(emb_f[i], emb_g[i], n_f[i], n_g[i], span)
        ks.append(o)
        gs.append(n)
    keep = model.condition(list(preserve_prompts)).float().flatten(0, 1)
    return torch.cat(ks), torch.cat(gs), keep


@register_method
class UCE(Method):
    """Closed-form edit of cross-attention K/V: forget prompts → their concept-free twins, remain kept."""

    name = "uce"
    HParams = UCEHParams
    task_kinds = ("concept", "style")
    # no learning rate: `tune` searches the two scales that trade erasing against preserving
    search_space = {"erase_scale": LogUniform(0.3, 3.0), "preserve_scale": LogUniform(0.01, 1.0)}

    def unlearn(self, model, forget, remain, budget, ctx):
        hp = self.hparams
        if model.kind != "text" or not hasattr(model, "text_encoder"):
            raise ConfigError("uce edits cross-attention: it needs a text-to-image model")
        t0 = time.perf_counter()
        pairs = list(dict.fromkeys(zip(forget.keys, forget.paired_keys or [None] * len(forget))))
        if hp.guide == "paired":
            if forget.paired_keys is None:
                raise ConfigError("uce guide='paired' needs forget.paired_keys (the concept-free prompts)")
            old, new = [p for p, _ in pairs], [g for _, g in pairs]
        else:
            old = list(dict.fromkeys(forget.keys))
            new = [""] * len(old)
        keep = [""]
        if hp.preserve == "remain":
            keep += [p for p in dict.fromkeys(remain.keys) if p not in set(old) and p != ""]
            if hp.max_preserve is not None:
                keep = keep[: hp.max_preserve + 1]
        # train_erase.py: preserve_scale = max(0.1, 1/len(retain_texts)) unless given
        preserve_scale = hp.preserve_scale if hp.preserve_scale is not None else max(0.1, 1 / len(keep))
        with torch.no_grad():
            k_erase, k_guide, k_keep = uce_keys(model, old, new, keep, hp.token_span)
            layers = cross_attention_projections(model.denoiser, hp.edit_keys)
            if not layers:
                raise ConfigError("uce: the denoiser has no cross-attention (attn2) layers")
            for _, lin in layers:
                W = lin.weight
                dev = W.device
                ke, kg, kp = k_erase.to(dev, W.dtype), k_guide.to(dev, W.dtype), k_keep.to(dev, W.dtype)
                v_guide, v_keep = kg @ W.T, kp @ W.T  # values from the original W ("replace")
                W.copy_(closed_form_edit(W, ke, v_guide, kp, v_keep, hp.lamb, hp.erase_scale, preserve_scale))
        ctx.step(torch.zeros(()))  # one closed-form "step"
        return {
            "edited_matrices": len(layers),
            "erased_prompts": len(old),
            "erase_token_rows": int(k_erase.shape[0]),
            "preserved_prompts": len(keep),
            "preserve_scale": preserve_scale,
            "preserve_token_rows": int(k_keep.shape[0]),
            "edit_seconds": round(time.perf_counter() - t0, 4),
        }
