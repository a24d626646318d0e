"""sklearn's handwritten digits (8×8, ships with scikit-learn) and the mini digit classifier."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor, nn

CLASS_NAMES = [str(i) for i in range(10)]


@dataclass
class DigitsSplit:
    x: Tensor  # N×1×8×8 in [-1, 1]
    y: Tensor  # N labels


@lru_cache(maxsize=1)
def load_digits_splits(seed: int = 0, test_fraction: float = 0.2) -> tuple[DigitsSplit, DigitsSplit]:
    """Deterministic stratified train/test split of the 1,797 digits."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0 * 2 - 1
    y = torch.tensor(d.target, dtype=torch.long)
    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=test_fraction, random_state=seed, stratify=d.target)
    tr, te = np.sort(tr), np.sort(te)
    return DigitsSplit(x[tr], y[tr]), DigitsSplit(x[te], y[te])


class DigitClassifier(nn.Module):
    """Small CNN on 8×8 digits; its penultimate layer is the FID feature space of the mini task."""

    feature_dim = 64

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1, stride=2), nn.ReLU(),
            nn.Flatten(), nn.Linear(64 * 4 * 4, self.feature_dim), nn.ReLU(),
        )
        self.head = nn.Linear(self.feature_dim, 10)

    @staticmethod
    def prepare(images01: Tensor) -> Tensor:
        """Images in [0, 1] (any size, 1 or 3 channels) -> the classifier's input."""
        if images01.shape[1] == 3:
            images01 = images01.mean(1, keepdim=True)
        if images01.shape[-1] != 8:
            images01 = nn.functional.interpolate(images01, size=(8, 8), mode="area")
        return images01 * 2 - 1

    def features(self, images01: Tensor) -> Tensor:
        return self.body(self.prepare(images01))

    def forward(self, images01: Tensor) -> Tensor:
        return self.head(self.features(images01))


def train_digit_classifier(seed: int = 0, epochs: int = 40) -> tuple[DigitClassifier, float]:
    """Train on the train split with small shifts as augmentation; return (model, test accuracy)."""
    train, test = load_digits_splits()
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    clf = DigitClassifier()
    opt = torch.optim.Adam(clf.parameters(), lr=2e-3)
    x01 = (train.x + 1) / 2
    for _ in range(epochs):
        perm = torch.randperm(len(train.y), generator=gen)
        for i in range(0, len(perm), 64):
            b = perm[i : i + 64]
            xb = x01[b]
            shift = torch.randint(-1, 2, (2,), generator=gen).tolist()
            xb = torch.roll(xb, shifts=shift, dims=(2, 3))
            loss = nn.functional.cross_entropy(clf(xb), train.y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return clf.eval(), digit_accuracy(clf, (test.x + 1) / 2, test.y)


@torch.no_grad()
def digit_accuracy(clf: DigitClassifier, images01: Tensor, labels: Tensor) -> float:
    return float((clf(images01).argmax(1) == labels).float().mean())
