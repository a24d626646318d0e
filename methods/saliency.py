"""Weight-saliency masks (SalUn): keep the `fraction` of weights with the largest scores, globally.

Pure functions of per-parameter score tensors (|Σ forget-loss gradient| in SalUn). The ranking is
GLOBAL over all parameters (one concatenated vector, not per layer), and the cut is found with
`torch.kthvalue` on that vector: O(N) selection, no argsort. (The reference generate_mask.py
computes ranks with two full argsorts and stores int64 masks: ~7 GB extra on SD v1.4's 860 M
weights; here the masks are booleans and the only temporary is one float32 copy of the scores.
CUDA's kthvalue is a radix select without a sort buffer; it is slower than a sort (seconds for
~10⁹ entries, pytorch#75599) but runs once per job.)

Threshold and ties, for `select="top"` (the paper's m_S = 1(|g| ≥ γ)):
    k   = int(fraction · N)                 (floor, as the reference's int(len · ratio))
    τ   = k-th largest score                (kthvalue(N − k + 1))
    keep = score ≥ τ                        when τ > 0
    keep = score > 0                        when τ = 0 (a zero gradient is never salient)
so exactly k weights are kept when the scores at the cut are distinct; weights tied with the k-th
score are all kept (count ≥ k), and weights with zero score are never kept (count ≤ k then).
k = 0 keeps nothing and k = N keeps everything (τ = None).

`select="bottom"` keeps the k SMALLEST scores (score ≤ τ, τ = k-th smallest, ties kept): an ablation.
The official SalUn generate_mask.py files rank `−|Σ g|` ascending (`ranks = argsort(argsort(−g))`,
mask `ranks < int(N·ratio)`), i.e. they keep the most salient weights, as "top" does; only a
third-party port that drops the minus sign keeps the least salient.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping

import torch
from torch import Tensor

MaskSelect = Literal["top", "bottom"]


@dataclass(frozen=True)
class MaskStats:
    total: int  # number of weights ranked
    requested: int  # k = int(fraction · total)
    kept: int  # weights whose mask is True (differs from k only through ties / zero scores)
    threshold: float | None  # τ; None when k = 0 or k = total

    @property
    def kept_fraction(self) -> float:
        return self.kept / self.total if self.total else 0.0


def kept_count(total: int, fraction: float) -> int:
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"saliency fraction must lie in [0, 1], not {fraction}")
    return int(total * fraction)


def saliency_threshold(flat: Tensor, k: int, select: MaskSelect = "top") -> Tensor:
    """τ for keeping k of the entries of the 1-D score vector `flat` (0 < k < numel)."""
    n = flat.numel()
    if not 0 < k < n:
        raise ValueError(f"need 0 < k < {n}, got k={k}")
    if select == "top":
        return flat.kthvalue(n - k + 1).values  # the k-th largest
    if select == "bottom":
        return flat.kthvalue(k).values  # the k-th smallest
    raise ValueError(f"select must be 'top' or 'bottom', not {select!r}")


def apply_threshold(score: Tensor, threshold: Tensor, select: MaskSelect = "top") -> Tensor:
    """Boolean mask of one parameter's scores against a global τ (tie rule in the module docstring)."""
    if select == "top":
        return score >= threshold if bool(threshold > 0) else score > 0
    return score <= threshold


def saliency_masks(
    scores: Mapping[str, Tensor], fraction: float, select: MaskSelect = "top"
) -> tuple[dict[str, Tensor], MaskStats]:
    """Boolean masks (same shapes and devices as `scores`) keeping `fraction` of all entries globally."""
    if select not in ("top", "bottom"):
        raise ValueError(f"select must be 'top' or 'bottom', not {select!r}")
    total = sum(s.numel() for s in scores.values())
    k = kept_count(total, fraction)
    if k == 0 or k == total:
        masks = {n: torch.full_like(s, k == total, dtype=torch.bool) for n, s in scores.items()}
        return masks, MaskStats(total, k, k, None)
    device = next(iter(scores.values())).device
    flat = torch.cat([s.detach().reshape(-1).to(device=device, dtype=torch.float32) for s in scores.values()])
    tau = saliency_threshold(flat, k, select)
    del flat
    masks = {}
    kept = 0
    for n, s in scores.items():
        m = apply_threshold(s.detach().float(), tau.to(s.device), select)
        kept += int(m.sum())
        masks[n] = m
    return masks, MaskStats(total, k, kept, float(tau))
