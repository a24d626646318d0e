"""A few of a job's evaluation images, kept in its record so the leaderboard can show them.

Users look before they read.  The strip is taken from the images the metrics already generated
(same prompts/classes and the task's fixed evaluation seeds for every method, so rows line up
and nothing extra is sampled), evenly spaced over the forget set and a remain set, downscaled to
thumbnails and stored as a base64 PNG *inside* the record: it travels wherever the record goes
(the driver writes records, workers may have no shared disk).
"""
from __future__ import annotations

import base64
import io

import numpy as np
import torch
import torch.nn.functional as F

PER_SET = 4  # images per set: forget | remain
THUMB = 64  # longest side in pixels
REMAIN_SETS = ("remain_test", "remain", "remain_train")


def _picks(n: int, k: int = PER_SET) -> list[int]:
    return sorted(set(np.linspace(0, n - 1, min(k, n)).round().astype(int).tolist())) if n else []


def _images(inst, model, which: str, idx: list[int]) -> torch.Tensor:
    """The chosen images of eval set `which`: from the metrics' cache when there, else sampled (few)."""
    keys, seeds = inst.evaluation.eval_sets[which]
    cached = inst._samples.get((id(model), which))
    if cached is not None:
        return cached[idx].float().cpu()
    return model.sample([keys[i] for i in idx], [seeds[i] for i in idx], **inst.evaluation.sampler).float().cpu()


def to_png(images: torch.Tensor, thumb: int = THUMB) -> bytes:
    """(N, C, H, W) in [0, 1] -> one PNG strip, images side by side (no metadata: same images, same bytes)."""
    from PIL import Image

    h, w = images.shape[-2:]
    scale = min(1.0, thumb / max(h, w))
    if scale < 1:
        images = F.interpolate(images, size=(max(1, round(h * scale)), max(1, round(w * scale))), mode="area")
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    strip = torch.cat(list(images[:, :3]), dim=-1)  # C, H, N*W
    arr = (strip.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def sample_strip(inst, model) -> dict:
    """{"png": base64, "sets": [...], "keys": [...], "seeds": [...], "per_set": [...]} or {"error": ...}.

    Never raises: pictures are a courtesy, the job's metrics are what count."""
    try:
        sets = inst.evaluation.eval_sets
        remain = next((s for s in REMAIN_SETS if s in sets), None)
        chosen = [s for s in ("forget", remain) if s in sets]
        parts, keys, seeds, counts = [], [], [], []
        for which in chosen:
            idx = _picks(len(sets[which][0]))
            parts.append(_images(inst, model, which, idx))
            keys += [str(sets[which][0][i]) for i in idx]
            seeds += [int(sets[which][1][i]) for i in idx]
            counts.append(len(idx))
        png = to_png(torch.cat(parts))
        return {"png": base64.b64encode(png).decode("ascii"), "sets": chosen, "keys": keys, "seeds": seeds, "per_set": counts}
    except Exception as exc:  # noqa: BLE001
        return {"error": f"{type(exc).__name__}: {exc}"}
