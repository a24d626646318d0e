"""The mini text world: procedurally drawn 16×16 RGB shapes with template captions.

Shipped as code so that the CPU analogue of the Stable Diffusion tasks needs no data files:
every image is a pure function of its attributes and a seed (numpy only), so captions match
images exactly and the data set is reproducible anywhere. The "swirl" style plays the role of
Van Gogh's (a distinctive texture that can be erased while shapes and colours stay).
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np

SIZE = 16
SHAPES = ("circle", "square", "triangle", "cross", "ring", "diamond")
COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.9, 0.1, 0.1),
    "green": (0.1, 0.75, 0.2),
    "blue": (0.15, 0.25, 0.95),
    "yellow": (0.95, 0.9, 0.1),
    "purple": (0.6, 0.15, 0.75),
    "orange": (1.0, 0.55, 0.05),
}
BACKGROUNDS: dict[str, tuple[float, float, float]] = {
    "black": (0.05, 0.05, 0.05),
    "white": (0.95, 0.95, 0.95),
    "gray": (0.5, 0.5, 0.5),
    "teal": (0.1, 0.45, 0.45),
}
STYLES = ("plain", "striped", "dotted", "swirl")
DISTINCTIVE_STYLE = "swirl"


@dataclass(frozen=True)
class ShapeSpec:
    shape: str
    colour: str
    background: str
    style: str = "plain"

    def __post_init__(self) -> None:
        for value, vocab, what in ((self.shape, SHAPES, "shape"), (self.colour, COLOURS, "colour"),
                                   (self.background, BACKGROUNDS, "background"), (self.style, STYLES, "style")):
            if value not in vocab:
                raise ValueError(f"unknown {what} {value!r}; known: {sorted(vocab)}")


def caption(spec: ShapeSpec) -> str:
    """The canonical template caption; the style clause is left out for plain images."""
    text = f"a {spec.colour} {spec.shape} on a {spec.background} background"
    return text if spec.style == "plain" else f"{text} in {spec.style} style"


def all_specs() -> list[ShapeSpec]:
    return [ShapeSpec(*a) for a in product(SHAPES, COLOURS, BACKGROUNDS, STYLES)]


def _mask(shape: str, cx: float, cy: float, r: float) -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32) + 0.5
    dx, dy = xx - cx, yy - cy
    if shape == "circle":
        return dx**2 + dy**2 <= r**2
    if shape == "ring":
        d2 = dx**2 + dy**2
        return (d2 <= r**2) & (d2 >= (0.55 * r) ** 2)
    if shape == "square":
        return (np.abs(dx) <= 0.85 * r) & (np.abs(dy) <= 0.85 * r)
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= 1.1 * r
    if shape == "cross":
        w = 0.38 * r
        return ((np.abs(dx) <= w) & (np.abs(dy) <= r)) | ((np.abs(dy) <= w) & (np.abs(dx) <= r))
    if shape == "triangle":  # apex up: inside when below the apex and within the widening sides
        top, bottom = cy - r, cy + 0.8 * r
        half = (dy + r) / (1.8 * r) * r
        return (yy >= top) & (yy <= bottom) & (np.abs(dx) <= half)
    raise ValueError(f"unknown shape {shape!r}")


def _style_factor(style: str, rng: np.random.Generator) -> np.ndarray:
    """Multiplicative texture over the shape's colour (1 = unchanged)."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    if style == "plain":
        return np.ones((SIZE, SIZE), np.float32)
    if style == "striped":
        return np.where((xx + yy + rng.integers(0, 2)) % 4 < 2, 1.0, 0.35).astype(np.float32)
    if style == "dotted":
        ox, oy = rng.integers(0, 3, size=2)
        return np.where(((xx + ox) % 3 == 0) & ((yy + oy) % 3 == 0), 0.25, 1.0).astype(np.float32)
    if style == "swirl":
        phase = rng.uniform(0, 2 * np.pi)
        ang = np.arctan2(yy - SIZE / 2, xx - SIZE / 2)
        rad = np.hypot(yy - SIZE / 2, xx - SIZE / 2)
        return (0.65 + 0.35 * np.sin(3 * ang + 0.9 * rad + phase)).astype(np.float32)
    raise ValueError(f"unknown style {style!r}")


def draw(spec: ShapeSpec, seed: int = 0) -> np.ndarray:
    """One image, H×W×3 float32 in [0, 1]; the seed jitters position, size, texture phase and noise."""
    rng = np.random.default_rng([seed, SHAPES.index(spec.shape), STYLES.index(spec.style)])
    r = rng.uniform(4.5, 6.0)
    cx, cy = rng.uniform(r + 0.5, SIZE - r - 0.5, size=2)
    mask = _mask(spec.shape, cx, cy, r)
    img = np.empty((SIZE, SIZE, 3), np.float32)
    img[:] = BACKGROUNDS[spec.background]
    fg = np.asarray(COLOURS[spec.colour], np.float32)[None, None, :] * _style_factor(spec.style, rng)[..., None]
    img[mask] = fg[mask]
    img += rng.normal(0, 0.02, size=img.shape).astype(np.float32)
    return np.clip(img, 0.0, 1.0)


def draw_batch(specs: list[ShapeSpec], seeds: list[int]) -> np.ndarray:
    """N×3×H×W float32 in [0, 1] (torch layout)."""
    if len(specs) != len(seeds):
        raise ValueError(f"{len(specs)} specs but {len(seeds)} seeds")
    return np.stack([draw(s, k).transpose(2, 0, 1) for s, k in zip(specs, seeds)])
