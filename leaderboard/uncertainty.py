"""Rank bands from paired decisions (the resampling itself: leaderboard/paired.py).

Row A is decided above row B when the 95% paired bootstrap interval of S_A − S_B excludes 0. Row i's
band runs from 1 + (rows decided above i) to N − (rows decided below i): rows that no paired
difference separates share a band ("1–3"), and a row with fewer than two jobs is decided against
nobody. The point rank (by mean score) always lies inside the band.
"""
from __future__ import annotations

import math
from typing import Mapping


def bands_from_pairs(means: Mapping[str, float], above: set[tuple[str, str]]) -> dict[str, tuple[int, int]]:
    """name -> (best, worst) rank: 1 + the rows decided above it, to N − the rows decided below it, where
    `above` holds (a, b) when a is decided above b (a paired test); rows without a finite mean are left
    out. The band always contains the point rank (by mean, ties sharing the best rank)."""
    names = [n for n, m in means.items() if m is not None and math.isfinite(m)]
    out = {}
    for n in names:
        point = 1 + sum(1 for o in names if means[o] > means[n])
        best = 1 + sum(1 for o in names if (o, n) in above)
        worst = len(names) - sum(1 for o in names if (n, o) in above)
        out[n] = (min(best, point), max(worst, point))
    return out


def band_text(band: tuple[int, int]) -> str:
    lo, hi = band
    return str(lo) if lo == hi else f"{lo}–{hi}"
