"""95% bootstrap confidence intervals for a row's mean and the rank bands they imply.

Interval: the percentile bootstrap of the mean over a row's jobs (targets × seeds resampled
together, with replacement, B = 2000), widened if needed to contain the sample mean.  The RNG is
seeded from the data (a hash of the key and the sorted values), so the same records always give
the same interval, whatever order they were read in.  With one job there is no interval (None):
a single measurement says nothing about its spread.

Band: methods whose score intervals overlap are not told apart.  Row i's band runs from
1 + (rows whose interval lies wholly above i's) to N − (rows whose interval lies wholly below
i's); a row without an interval (n = 1) overlaps everything.  The point rank (by mean score)
always lies inside the band.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

LEVEL = 0.95
RESAMPLES = 2000


@dataclass(frozen=True)
class Interval:
    lo: float
    hi: float


def data_seed(key: str, values: np.ndarray) -> int:
    h = hashlib.sha256(key.encode())
    h.update(np.ascontiguousarray(values, dtype=np.float64).tobytes())
    return int.from_bytes(h.digest()[:8], "little")


def bootstrap_ci(values: Sequence[float], key: str = "", level: float = LEVEL, resamples: int = RESAMPLES) -> Interval | None:
    """Percentile-bootstrap interval of the mean of the finite values; None when fewer than two."""
    x = np.sort(np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64))
    if len(x) < 2:
        return None
    rng = np.random.default_rng(data_seed(key, x))
    means = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    m = float(x.mean())
    return Interval(min(float(lo), m), max(float(hi), m))


def rank_bands(means: Mapping[str, float], intervals: Mapping[str, Interval | None]) -> dict[str, tuple[int, int]]:
    """name -> (best, worst) rank that the intervals allow, higher mean better; rows without a finite
    mean are left out.  A missing interval is treated as (−inf, +inf)."""
    names = [n for n, m in means.items() if m is not None and math.isfinite(m)]

    def bounds(n: str) -> tuple[float, float]:
        iv = intervals.get(n)
        return (-math.inf, math.inf) if iv is None else (iv.lo, iv.hi)

    out = {}
    for n in names:
        lo, hi = bounds(n)
        above = sum(1 for o in names if o != n and bounds(o)[0] > hi)
        below = sum(1 for o in names if o != n and bounds(o)[1] < lo)
        out[n] = (1 + above, len(names) - below)
    return out


def band_text(band: tuple[int, int]) -> str:
    lo, hi = band
    return str(lo) if lo == hi else f"{lo}–{hi}"
