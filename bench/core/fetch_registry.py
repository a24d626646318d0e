"""What `unlearn-bench fetch` can fetch, as data: every weight file and data set a suite's tasks read,
at a pinned revision, with its sha256 and the place the loaders already read it from.

A task names what it needs (`Task.required_artifacts()`: names of this registry); `bench/runner/fetch.py`
checks, downloads and verifies them. Nothing here touches the network.

Kinds:
  hf-repo-snapshot     files of a Hugging Face repository at a commit, through huggingface_hub into its
                       cache (where `snapshot_download`/`hf_hub_download(local_files_only=True)` find them)
  url-file             one file from a URL into `dest()`; a mirror (`--mirror URL` or a local directory)
                       replaces the URL's directory, the file name stays
  torchvision-dataset  an archive (a url-file) extracted into `dest()` in torchvision's layout

A file's `sha256` is the pinned content hash, with its source in `source`; None means trust-on-first-fetch:
the hash of the first download is recorded in the fetch lock file (bench/runner/fetch.py) and checked ever
after. Never put a value here that has no source.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from bench.core.cache import cache_root
from bench.core.errors import UnknownNameError

FETCH_COMMAND = "unlearn-bench fetch --suite paper"
KINDS = ("hf-repo-snapshot", "url-file", "torchvision-dataset")

# the names tasks give in required_artifacts()
SD14_ARTIFACT = "sd-v1-4"
OPENCLIP_ARTIFACT = "open-clip-vit-b-32-laion2b"
INCEPTION_ARTIFACT = "clean-fid-inception"
CIFAR10_ARTIFACT = "cifar10"

INCEPTION_FILE = "inception-2015-12-05.pt"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"  # torchvision's extracted layout, what tasks/cifar/data.py reads


def inception_cache_path() -> Path:
    """Where `fetch` puts clean-fid's Inception: the suite's cache (it outlives /tmp, clean-fid's own download place,
    which metrics/inception_fid.py reads after it)."""
    return cache_root() / "inception" / INCEPTION_FILE


def cifar10_default_root() -> Path:
    """CIFAR-10's default root (it holds cifar-10-batches-py/): $UNLEARN_BENCH_DATA/cifar10, else the suite's cache."""
    data = os.environ.get("UNLEARN_BENCH_DATA")
    return Path(data) / "cifar10" if data else cache_root() / "cifar10"


@dataclass(frozen=True)
class FileSpec:
    path: str  # hf: the path inside the repository; url-file / dataset: the file name under dest()
    sha256: str | None  # pinned content hash; None: trust-on-first-fetch (recorded in the lock file)
    size: int | None = None  # bytes, where documented (shown in the table; the hash is what is checked)
    url: str | None = None  # url-file / dataset: the original location
    md5: str | None = None  # a second published checksum, checked too (torchvision's for CIFAR-10)
    source: str = ""  # where the pinned value was read


@dataclass(frozen=True)
class Artifact:
    name: str
    kind: str  # one of KINDS
    what: str  # one line for people
    files: tuple[FileSpec, ...]
    repo_id: str | None = None  # hf-repo-snapshot
    revision: str | None = None  # hf-repo-snapshot: a 40-hex commit, never a branch
    dest: Callable[[], Path] | None = None  # url-file / dataset: the directory the files land in
    extract_to: str | None = None  # dataset: the folder the archive unpacks to under dest(), what loaders read
    # dataset: (path under extract_to, md5) of every extracted file, checked after extracting and on every run
    members: Callable[[], list[tuple[str, str]]] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"artifact {self.name!r}: kind {self.kind!r} is not one of {', '.join(KINDS)}")
        if self.kind == "hf-repo-snapshot":
            rev = self.revision or ""
            if not self.repo_id or len(rev) != 40 or any(c not in "0123456789abcdef" for c in rev):
                raise ValueError(f"artifact {self.name!r}: a Hugging Face artifact needs repo_id and a 40-hex commit revision")
        elif self.dest is None or any(not f.url for f in self.files):
            raise ValueError(f"artifact {self.name!r}: a {self.kind} artifact needs dest and a url per file")
        for f in self.files:
            if f.sha256 is not None and (len(f.sha256) != 64 or any(c not in "0123456789abcdef" for c in f.sha256)):
                raise ValueError(f"artifact {self.name!r}: {f.path}: sha256 must be 64 lower-case hex digits or None")


def _hf_files(paths: tuple[str, ...], pinned: dict[str, tuple[str, int, str]]) -> tuple[FileSpec, ...]:
    out = []
    for p in paths:
        sha, size, source = pinned.get(p, (None, None, ""))
        out.append(FileSpec(p, sha, size, source=source))
    return tuple(out)


# -- the registry ------------------------------------------------------------------------------------------------
# Stable Diffusion v1.4 (diffusers layout): only what bench/core/adapters/text_to_image.py reads (model_index.json,
# scheduler, tokenizer, fp32 safetensors of the text encoder, UNet and VAE; diffusers and transformers prefer
# safetensors when the file is there). Commit 133a221b… ("Add non_ema checkpoints (#230)") is the repository's
# `main`: the last commit on the branch (huggingface.co/CompVis/stable-diffusion-v1-4/tree/refs%2Fpr%2F252/unet lists
# it as the newest change), and the revision public SD-unlearning code pins (REVISION = '133a221b…').
SD14_REVISION = "133a221b8aa7292a167afc5127cb63fb5005638b"
SD14_FILES = (
    "model_index.json",
    "scheduler/scheduler_config.json",
    "tokenizer/merges.txt",
    "tokenizer/special_tokens_map.json",
    "tokenizer/tokenizer_config.json",
    "tokenizer/vocab.json",
    "text_encoder/config.json",
    "text_encoder/model.safetensors",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/config.json",
    "vae/diffusion_pytorch_model.safetensors",
)
SD14_PINNED = {
    # the Hub's LFS pointer of this file as last changed on main (commit 07c396e, "Adding `safetensors` variant of
    # this model (#194)", unchanged by later commits): huggingface.co/CompVis/stable-diffusion-v1-4/blob/
    # refs%2Fpr%2F260/vae/diffusion_pytorch_model.safetensors ("SHA256: a2b5134f…", 335 MB); the same oid and size
    # 334643276 in the LFS pointers of SD-1.x repositories that copy this VAE
    "vae/diffusion_pytorch_model.safetensors": (
        "a2b5134f4dbc140d9c11f11cba3233099e00af40f262f136c691fb7d38d2194c", 334643276,
        "HF LFS pointer, CompVis/stable-diffusion-v1-4 vae (commit 07c396e, #194)"),
}

# open_clip ViT-B-32 laion2b_s34b_b79k: the file metrics/alignment.py reads first (OPENCLIP_FILES[0]). The commit and
# the LFS pointer (oid sha256:ac4f8c4b…, size 605143316) of
# huggingface.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K/raw/1a25a446712ba5ee05982a381eed697ef9b435cf/open_clip_model.safetensors,
# as recorded in public code that pins this checkpoint (and the blob name of that file in HF caches quoted there).
OPENCLIP_REPO = "laion/CLIP-ViT-B-32-laion2B-s34B-b79K"
OPENCLIP_REVISION = "1a25a446712ba5ee05982a381eed697ef9b435cf"
OPENCLIP_FILE = "open_clip_model.safetensors"
OPENCLIP_PRETRAINED = ("ViT-B-32", "laion2b_s34b_b79k")

# clean-fid's Inception (the StyleGAN2-ADA torchscript translation): cleanfid.downloads_helper.inception_url; the sha256
# is the digest k-diffusion checks it against (crowsonkb/k-diffusion, k_diffusion/evaluation.py).
INCEPTION_URL = "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt"
INCEPTION_SHA256 = "f58cb9b6ec323ed63459aa4fb441fe750cfe39fafad6da5cb504a16f19e958f4"

# CIFAR-10, torchvision's archive: URL and md5 from torchvision.datasets.CIFAR10; the sha256 is the one Keras checks
# (tensorflow/python/keras/datasets/cifar10.py, get_file(..., file_hash='6d958be0…')); 170,498,071 bytes.
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"

ARTIFACTS: dict[str, Artifact] = {
    a.name: a
    for a in (
        Artifact(
            SD14_ARTIFACT, "hf-repo-snapshot", "Stable Diffusion v1.4 (diffusers; sd-nudity, sd-vangogh)",
            _hf_files(SD14_FILES, SD14_PINNED), repo_id="CompVis/stable-diffusion-v1-4", revision=SD14_REVISION,
        ),
        Artifact(
            OPENCLIP_ARTIFACT, "hf-repo-snapshot", "open_clip ViT-B-32 laion2b_s34b_b79k (CLIP judge: UA/RA, AS)",
            (FileSpec(OPENCLIP_FILE, "ac4f8c4b88af6d963118cbf40ad93176d092abbedfcb752601ae1866352656e6", 605143316,
                      source=f"HF LFS pointer, {OPENCLIP_REPO}@{OPENCLIP_REVISION[:7]}"),),
            repo_id=OPENCLIP_REPO, revision=OPENCLIP_REVISION,
        ),
        Artifact(
            INCEPTION_ARTIFACT, "url-file", "clean-fid Inception-v3 (FID)",
            (FileSpec(INCEPTION_FILE, INCEPTION_SHA256, url=INCEPTION_URL, source="k-diffusion's pinned digest"),),
            dest=lambda: inception_cache_path().parent,
        ),
        Artifact(
            CIFAR10_ARTIFACT, "torchvision-dataset", "CIFAR-10 (torchvision's python version)",
            (FileSpec(CIFAR10_ARCHIVE, CIFAR10_SHA256, 170498071, url=CIFAR10_URL, md5=CIFAR10_MD5,
                      source="Keras' pinned sha256; torchvision's md5"),),
            dest=cifar10_default_root, extract_to=CIFAR10_FOLDER, members=lambda: torchvision_cifar10_members(),
        ),
    )
}


def openclip_is_fetchable(model_name: str, pretrained: str) -> bool:
    """The open_clip checkpoint this registry pins (metrics/alignment.py reads it from the HF cache)."""
    return (model_name, pretrained) == OPENCLIP_PRETRAINED


def torchvision_cifar10_members() -> list[tuple[str, str]]:
    """The files torchvision's CIFAR10 reader checks, with its md5s (its own integrity check, before every load)."""
    from torchvision.datasets import CIFAR10

    return [(name, md5) for name, md5 in CIFAR10.train_list + CIFAR10.test_list] + [(CIFAR10.meta["filename"], CIFAR10.meta["md5"])]


def get_artifact(name: str, registry: dict[str, Artifact] | None = None) -> Artifact:
    registry = ARTIFACTS if registry is None else registry
    if name not in registry:
        raise UnknownNameError(f"no fetchable artifact {name!r}; known: {', '.join(sorted(registry))}")
    return registry[name]
