"""CIFAR-10 from torchvision's on-disk format, read offline from a user-given root.

Root resolution (first that applies): the task option / `--data-root`, `$UNLEARN_BENCH_DATA/cifar10`,
`$UNLEARN_BENCH_CACHE/cifar10` (default `~/.cache/unlearn-bench/cifar10`). The root holds
torchvision's `cifar-10-batches-py/` folder; nothing is downloaded at run time (`unlearn-bench fetch`
puts it in the default root).
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
from torch import Tensor

from bench.core.errors import MissingDataError
from bench.core.fetch_registry import CIFAR10_FOLDER, FETCH_COMMAND, cifar10_default_root

# torchvision's label order (batches.meta); the task's targets are these indices
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


default_data_root = cifar10_default_root  # $UNLEARN_BENCH_DATA/cifar10, else $UNLEARN_BENCH_CACHE/cifar10


def resolve_data_root(root: str | None) -> Path:
    return Path(root).expanduser() if root else default_data_root()


@dataclass(frozen=True)
class CifarSplit:
    """uint8 images N×3×32×32 (kept compact; converted per use) and int64 labels."""

    images: Tensor
    labels: Tensor
    classes: tuple[str, ...]

    def pixels(self, idx: Tensor | None = None) -> Tensor:
        """Images in [-1, 1] (the denoiser's space), float32."""
        x = self.images if idx is None else self.images[idx]
        return x.float().div(127.5).sub(1.0)

    def unit(self, idx: Tensor | None = None) -> Tensor:
        """Images in [0, 1] (what classifiers and feature extractors take)."""
        x = self.images if idx is None else self.images[idx]
        return x.float().div(255.0)


def load_cifar10(root: str | None = None, train: bool = True) -> CifarSplit:
    """One split through torchvision's own reader (checksums included); MissingDataError when absent."""
    return _load_split(str(resolve_data_root(root)), bool(train))


STAND_IN_MARKER = "unlearn-bench-stand-in.json"  # beside a stand-in's batches: its own checksums (bench/runner/rehearsal.py)


def stand_in_checksums(root: str | Path) -> dict | None:
    """The md5 of each batch file of a stand-in data set (same format and size as CIFAR-10, random pixels; a
    rehearsal's), or None for a real download. torchvision checks files against CIFAR-10's own md5s, which a stand-in
    cannot match: its marker file lists its own, and torchvision checks those instead."""
    import json

    marker = Path(root) / "cifar-10-batches-py" / STAND_IN_MARKER
    return json.loads(marker.read_text())["md5"] if marker.is_file() else None


def is_stand_in(root: str | None) -> bool:
    return stand_in_checksums(resolve_data_root(root)) is not None


def _reader(path: Path):
    """torchvision's CIFAR10 reader; for a stand-in, the same reader checking the stand-in's own checksums."""
    import torchvision

    md5 = stand_in_checksums(path)
    if md5 is None:
        return torchvision.datasets.CIFAR10
    base = torchvision.datasets.CIFAR10
    return type("StandInCIFAR10", (base,), {
        "train_list": [[name, md5[name]] for name, _ in base.train_list],
        "test_list": [[name, md5[name]] for name, _ in base.test_list],
        "meta": {**base.meta, "md5": md5[base.meta["filename"]]},
    })


@lru_cache(maxsize=4)
def _load_split(root: str, train: bool) -> CifarSplit:
    path = Path(root)
    try:
        ds = _reader(path)(str(path), train=train, download=False)
    except RuntimeError:  # torchvision: "Dataset not found or corrupted" (missing files or checksum mismatch)
        default = default_data_root()
        where = "" if path == default else f" (it goes to {default}; copy that folder here or drop --data-root / data_root)"
        raise MissingDataError(
            f"CIFAR-10 not found (or corrupted) under {path}: torchvision expects {path / CIFAR10_FOLDER}; "
            f"get it with `{FETCH_COMMAND}`{where}"
        ) from None
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # HWC -> CHW, uint8
    return CifarSplit(images, torch.tensor(ds.targets, dtype=torch.long), tuple(ds.classes))


load_cifar10.cache_clear = _load_split.cache_clear  # type: ignore[attr-defined]
