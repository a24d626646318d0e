"""Retention (this suite's definition, after arXiv 2411.02068's integrity): paired perceptual
distance between the original's and the unlearned model's images for the same remain prompt,
seed and sampler. LPIPS (AlexNet) when the `lpips` package and its backbone weights are local;
otherwise 1 − cosine of the task's declared feature space (the CLIP judge's image embeddings).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from bench.core.errors import ConfigError, MissingWeightsError
from bench.core.instances import PerInstance, instance_ids
from metrics.base import Metric, generated, register_metric

SPACES = ("auto", "lpips", "clip")  # the task option retention_space (SD tasks; the mini tasks declare their own)
ALEXNET_FILE = "alexnet-owt-7be5be79.pth"  # torchvision's AlexNet, LPIPS's backbone


def lpips_problem() -> str | None:
    """Why LPIPS cannot run offline here (None: it can): the package, or its backbone's weights."""
    import importlib.util

    import torch.hub

    if importlib.util.find_spec("lpips") is None:
        return "the `lpips` package is not installed (pip install 'unlearn-bench[lpips]')"
    ckpt = Path(torch.hub.get_dir()) / "checkpoints"
    if not (ckpt.is_dir() and any(f.name.startswith("alexnet") for f in ckpt.iterdir())):
        return (f"torchvision's AlexNet weights are not in {ckpt} (fetch https://download.pytorch.org/models/{ALEXNET_FILE} "
                "into that folder on a machine with network access)")
    return None


@lru_cache(maxsize=1)
def local_lpips():
    """lpips.LPIPS('alex') if it loads without network, else None."""
    if lpips_problem() is not None:
        return None  # torchvision would try to download the backbone
    try:
        import lpips

        return lpips.LPIPS(net="alex", verbose=False).eval().requires_grad_(False)
    except Exception:  # noqa: BLE001 - optional extra unusable offline
        return None


def check_space(space: str) -> None:
    """ConfigError for an unknown retention_space; MissingWeightsError naming what LPIPS lacks when it was asked for."""
    if space not in SPACES:
        raise ConfigError(f"retention_space must be one of {', '.join(SPACES)}, not {space!r}")
    if space == "lpips" and local_lpips() is None:
        raise MissingWeightsError(f"retention_space: lpips, but {lpips_problem() or 'LPIPS failed to load'}; "
                                  "or set retention_space: clip (1 − cos of the CLIP judge's image embeddings)")


def paired_cosine_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """1 − cos per pair: 0 for identical embeddings, up to 2."""
    return 1 - (F.normalize(a.float(), dim=-1) * F.normalize(b.float(), dim=-1)).sum(-1)


@torch.no_grad()
def lpips_distance(net, a01: torch.Tensor, b01: torch.Tensor, batch_size: int = 32) -> torch.Tensor:
    out = [net(a01[i : i + batch_size] * 2 - 1, b01[i : i + batch_size] * 2 - 1).flatten() for i in range(0, len(a01), batch_size)]
    return torch.cat(out)


def original_images(inst, original, which, ctx):
    """The original's images: from the task's on-disk cache when it provides them (they never change)."""
    cached = inst.evaluation.original_images.get(which)
    return cached if cached is not None else generated(inst, original, which, ctx)


FLOOR_SET = "retention_floor"  # the retention set's prompts under other seeds (tasks/base.py t2i_eval_sets)


@register_metric
class Retention(Metric):
    """Paired distance original vs unlearned on `info.get("retention_set", "remain_test")`.

    Space: `evaluation.retention_features = (name, images01 -> N×D)` when the task declares one,
    else LPIPS (local weights), else 1 − cos of the CLIP judge's image embeddings. With a
    `retention_floor` evaluation set, also the floor column the score's integrity term reads.
    """

    name = "retention"
    requires = ("clip_judge|retention_features", "eval_sets:remain_test")

    def space(self, inst) -> str:
        """The distance, as the column names it: the task's declared space; else by `retention_space`:
        auto = LPIPS (AlexNet) when it runs offline here, else 1 − cos of the CLIP judge's image embeddings;
        lpips = LPIPS or a MissingWeightsError naming what is missing; clip = the CLIP judge's."""
        if inst.evaluation.retention_features is not None:  # a task's own declared space wins (mini tasks)
            return f"1−cos {inst.evaluation.retention_features[0]}"
        mode = inst.evaluation.retention_space
        check_space(mode)
        if mode != "clip" and local_lpips() is not None:
            return "LPIPS alex"
        return f"1−cos {inst.evaluation.clip_judge.name} image emb."

    def distances(self, inst, ref, new):
        if inst.evaluation.retention_features is not None:
            features = inst.evaluation.retention_features[1]
            return paired_cosine_distance(features(ref), features(new))
        if self.space(inst) == "LPIPS alex":
            return lpips_distance(local_lpips(), ref, new)
        judge = inst.evaluation.clip_judge
        return paired_cosine_distance(judge.encode_images(ref), judge.encode_images(new))

    def columns(self, inst):
        which = inst.evaluation.retention_set
        n = len(inst.evaluation.eval_sets[which][0])
        out = {f"Retention dist. ({self.space(inst)}, vs original, n={n})": "↓"}
        if FLOOR_SET in inst.evaluation.eval_sets:
            out[f"Retention-floor ({self.space(inst)}, original vs original under other seeds, n={n})"] = "↓"
        return out

    def compute(self, inst, unlearned, original, ctx):
        which = inst.evaluation.retention_set
        col, *floor_col = self.columns(inst)
        ref = original_images(inst, original, which, ctx)
        new = generated(inst, unlearned, which, ctx)
        prompts, seeds = inst.evaluation.eval_sets[which]
        out = {col: PerInstance.of(which, instance_ids(prompts, seeds), self.distances(inst, ref, new).tolist())}
        if floor_col:
            out[floor_col[0]] = floor_distance(self, inst, original, ref, ctx)
        return out


def floor_distance(metric: Retention, inst, original, ref, ctx) -> float:
    """The retention floor: the mean distance between Original's image of each retention prompt and
    Original's image of the same prompt under another noise seed (the `retention_floor` set, prompt for
    prompt). A model at this distance has kept no more of Original's remain images than a fresh draw of
    the same prompts would: the score's K_i = 0 there (leaderboard/score.py)."""
    prompts, _ = inst.evaluation.eval_sets[inst.evaluation.retention_set]
    if list(inst.evaluation.eval_sets[FLOOR_SET][0]) != list(prompts):
        raise ValueError(f"evaluation set {FLOOR_SET!r} must hold the retention set's prompts in the same order")
    other = original_images(inst, original, FLOOR_SET, ctx)
    return float(metric.distances(inst, ref, other).mean())
