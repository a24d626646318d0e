"""clean-fid's Inception-v3 (2048-d pool features) in "clean" mode, loaded offline, and the
CIFAR-10 train reference statistics.

`build_feature_extractor("clean")` would download the network to /tmp when absent; here the same
torchscript file is resolved locally (task option, $UNLEARN_BENCH_INCEPTION, the suite's cache where
`unlearn-bench fetch` puts it, clean-fid's own download place) and a missing file is one MissingWeightsError with the fetch
command. The forward pass is clean-fid's: images quantised to 8-bit levels (as if saved as PNG),
clean-fid's PIL-bicubic resize to 299×299, (x − 128)/128, the network's `layers`.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from cleanfid.resize import build_resizer
from torch import Tensor, nn

from bench.core.atomic import write_atomic
from bench.core.cache import cache_root
from bench.core.errors import ConfigError, MissingWeightsError
from bench.core.fetch_registry import FETCH_COMMAND, INCEPTION_FILE, inception_cache_path
from bench.core.hashing import file_digest
from metrics.frechet import batch_features, stats_of

CLEANFID_STATS_URL = "https://www.cs.cmu.edu/~clean-fid/stats"


def inception_candidates(explicit: str | None = None) -> list[Path]:
    if explicit:
        return [Path(explicit).expanduser()]
    out = []
    if os.environ.get("UNLEARN_BENCH_INCEPTION"):
        out.append(Path(os.environ["UNLEARN_BENCH_INCEPTION"]).expanduser())
    cleanfid_dir = Path("./" if platform.system() == "Windows" else "/tmp")  # where clean-fid downloads it
    out += [inception_cache_path(), cleanfid_dir / INCEPTION_FILE]  # the sha256-checked copy `unlearn-bench fetch` puts, first
    return out


def resolve_inception_weights(explicit: str | None = None) -> Path:
    candidates = inception_candidates(explicit)
    for path in candidates:
        if path.is_file():
            return path
    if explicit:
        raise MissingWeightsError(f"clean-fid Inception weights {candidates[0]} do not exist (task option inception_weights); "
                                  f"drop the option to use the one `{FETCH_COMMAND}` gets")
    raise MissingWeightsError(
        f"clean-fid Inception weights {INCEPTION_FILE} not found at {', '.join(map(str, candidates))}; "
        f"get them with `{FETCH_COMMAND}` (into {inception_cache_path()}), set UNLEARN_BENCH_INCEPTION, or pass the task option inception_weights"
    )


class CleanInception(nn.Module):
    """Images in [0, 1] -> clean-fid Inception pool features (float32, on CPU via batch_features)."""

    def __init__(self, weights: str | Path, device: str | torch.device = "cpu"):
        super().__init__()
        self.path = Path(weights)
        try:
            self.base = torch.jit.load(str(self.path), map_location=torch.device(device)).eval()
        except (RuntimeError, ValueError) as exc:
            raise MissingWeightsError(f"{self.path} is not clean-fid's torchscript Inception: {str(exc).splitlines()[0]}") from None
        self.resize = build_resizer("clean")
        self.name = f"clean-fid {self.path.stem}"

    @property
    def device(self) -> torch.device:
        return next(self.base.parameters()).device

    @torch.no_grad()
    def forward(self, images01: Tensor) -> Tensor:
        levels = (images01.detach().float().clamp(0, 1) * 255).round().cpu().numpy().transpose(0, 2, 3, 1)
        resized = np.stack([self.resize(img) for img in levels])  # N×299×299×3 float32 in [0, 255]
        x = torch.from_numpy(resized).permute(0, 3, 1, 2).to(self.device)
        return self.base.layers((x - 128) / 128).flatten(1)


def cifar10_train_stats(
    extractor: CleanInception,
    load_train: Callable[[], Any],
    stats_file: str | None = None,
    batch_size: int = 250,
) -> dict:
    """{"mu", "sigma", "source"} of the CIFAR-10 train set in the extractor's feature space.

    Order: an explicit .npz (mu, sigma); clean-fid's cached `cifar10_clean_train_32.npz`; this suite's
    cache for this exact network file; else computed with the extractor from the train split that
    `load_train()` reads (the task's loader: only called when nothing cached applies) and cached.
    Never downloaded.
    """
    if stats_file:
        path = Path(stats_file).expanduser()
        if not path.is_file():
            raise MissingWeightsError(f"FID reference statistics {path} do not exist (task option fid_stats)")
        return _load_stats(path)
    import cleanfid as _cf

    cleanfid_file = Path(_cf.__file__).parent / "stats" / "cifar10_clean_train_32.npz"
    if cleanfid_file.is_file():
        return _load_stats(cleanfid_file)
    cached = cache_root() / "fid-stats" / f"cifar10_clean_train_32_{file_digest(extractor.path)}.npz"
    if cached.is_file():
        return _load_stats(cached)
    try:
        train = load_train()
    except Exception as exc:  # noqa: BLE001 - say what else would have worked
        raise type(exc)(
            f"{exc}; alternatively put clean-fid's reference statistics at {cleanfid_file} "
            f"(`curl -L -O {CLEANFID_STATS_URL}/cifar10_clean_train_32.npz`) or pass the task option fid_stats"
        ) from None
    feats = np.concatenate([batch_features(extractor, train.unit(torch.arange(i, min(i + batch_size, len(train.labels)))))
                            for i in range(0, len(train.labels), batch_size)])
    stats = stats_of(feats)
    try:
        write_atomic(cached, lambda f: np.savez(f, **stats))
    except PermissionError:  # a method's process may write only its own directory (bench/runner/sandbox.py)
        pass
    return {**stats, "source": f"computed from {len(feats)} local CIFAR-10 train images -> {cached}"}


def _load_stats(path: Path) -> dict:
    with np.load(path) as f:
        if "mu" not in f or "sigma" not in f:
            raise ConfigError(f"{path} lacks 'mu'/'sigma' arrays (clean-fid's statistics format)")
        return {"mu": f["mu"], "sigma": f["sigma"], "source": str(path)}


