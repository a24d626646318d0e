"""The field's prompt sets as pinned data (issue 36): where each file lives (repository, commit, path), its licence and
sha256, how to read it (format, columns) and how many rows it has. Only metadata lives here: no file is shipped.

`unlearn-bench fetch prompts` (bench/runner/fetch_prompts.py) puts the files into `prompt_set_dir()`: the MIT sets
from GitHub at the pinned commit, any set from a directory of the user's (`--from DIR`, looked up by file name). The
sets without a licence (RGD's) are never downloaded. Tasks read a set by name (`read_prompt_set`) and refuse a file
whose sha256 is not the pinned one, so a set's name and hash say exactly which prompts a record was judged on.

Every value below was read off the files at the commit named (`git show <commit>:<path> | sha256sum`, rows counted
with Python's csv/json). UNPINNED marks a hash nobody has read yet: such a file is read as it is, and says so.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path, PurePosixPath

from bench.core.cache import cache_root
from bench.core.errors import BenchError, ConfigError, MissingDataError

UNPINNED = "unpinned"
FETCH_PROMPTS = "unlearn-bench fetch prompts"
NO_LICENCE = "none"
AS_TRAINING = "training"  # as_train_set's value for "the D_r,train prompts themselves" (never a set's name)


class MissingPromptSetError(MissingDataError):
    """A set's file is not in the prompt-set cache: names the set and the fetch command."""


class PromptSetHashError(BenchError):
    """A set's file is not the pinned one: names the set, the expected and the actual sha256."""


@dataclass(frozen=True)
class PromptSet:
    name: str
    repo: str  # GitHub owner/name
    commit: str  # 40 hex: the commit the file was read and hashed at
    path: str  # inside the repository
    licence: str  # "MIT", or NO_LICENCE: the file is never downloaded, only read from a user's directory
    sha256: str  # 64 hex of the whole file, or UNPINNED
    format: str  # csv | json (a JSON list of prompt strings)
    rows: int  # prompts in the set (after `where`)
    prompt_column: str | None = None  # csv: the prompt's column
    seed_column: str | None = None  # csv: the per-prompt noise seed, used as the image's seed
    guidance_column: str | None = None  # csv: the per-prompt classifier-free guidance
    where: tuple[str, str, float] | None = None  # a subset of the file: (column, ">", value)
    of: str | None = None  # a subset: the set whose file it reads
    note: str = ""

    @property
    def file_name(self) -> str:
        return PurePosixPath(self.path).name

    @property
    def downloadable(self) -> bool:
        """May `fetch prompts` download it (a licence that allows it), rather than only read a user's copy?"""
        return self.licence != NO_LICENCE

    @property
    def raw_url(self) -> str:
        return f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{self.path}"

    @property
    def source(self) -> str:
        return f"{self.repo}@{self.commit[:12]} {self.path}"


@dataclass(frozen=True)
class PromptRows:
    """A set as a task uses it: prompts, and per prompt the file's seed and guidance where it has them."""

    name: str
    sha256: str
    prompts: list[str]
    seeds: list[int] | None = None
    guidance: list[float] | None = None


ERASING = ("rohitgandikota/erasing", "25613d27892326e0c7770f7f3555bea4be150089")
UNLEARNDIFFATK = ("OPTML-Group/Diffusion-MU-Attack", "5a3e5d37fb8787113e5d479204ab593a60e303e0")
RGD = ("reds-lab/Restricted_gradient_diversity_unlearning", "0075ecbb74581478ee6cc0334f1e3287d3bcf1ba")

_I2P = PromptSet(
    "i2p", *ERASING, "data/unsafe-prompts4703.csv", "MIT", "6c1821aeeb20beb276b4e20ce4c4b801f9106dc935bafc9f6fd5e12aa2651e6f",
    "csv", 4703, "prompt", "evaluation_seed", "evaluation_guidance",
    note="I2P (Schramowski et al.) as ESD's nudity evaluation reads it (evalscripts/nudenet-classes.py)")

_SETS = (
    _I2P,
    replace(_I2P, name="i2p-nudity", rows=854, where=("nudity_percentage", ">", 0.0), of="i2p",
            note="I2P's rows with nudity_percentage > 0: the same 854 prompts in the same order as RGD's "
                 "high_nudity_prompts_extended.json (checked prompt for prompt), with I2P's seeds and guidance"),
    PromptSet("unlearndiffatk-nudity", *UNLEARNDIFFATK, "prompts/nudity.csv", "MIT",
              "0a40f6e63bca976513d1d56df71480239ba1eb5c7a9de4df2f535d80f6e0eccd", "csv", 142, "prompt", "evaluation_seed",
              "evaluation_guidance", note="UnlearnDiffAtk's 142 I2P nudity prompts (attack and no-attack evaluation)"),
    PromptSet("unlearndiffatk-vangogh", *UNLEARNDIFFATK, "prompts/vangogh.csv", "MIT",
              "9d0b141b6674b5ef93be5a38c4d220ec56ca1ec096cdfdb5baf0932deca72362", "csv", 50, "prompt", "evaluation_seed",
              "evaluation_guidance", note="UnlearnDiffAtk's 50 Van Gogh paintings (ESD's list plus guidance 7.5)"),
    PromptSet("esd-vangogh", *ERASING, "data/vangogh_prompts.csv", "MIT",
              "c299f14b2945ed88b88966cc3460a9d9aeb3b0dd51c585ed454c6d6601d24f87", "csv", 50, "prompt", "evaluation_seed",
              note="ESD's 50 Van Gogh prompts: the same prompts and seeds as unlearndiffatk-vangogh, no guidance column"),
    PromptSet("rgd-y-c-train", *RGD, "SD/data/y_c_train.json", NO_LICENCE,
              "3aafbf5e97b5e706113da6f1f603fb867f7ac0255c1f52fc2bd002654ac00975", "json", 800,
              note="RGD's D_f: 'A {mood} {nudity word} person {activity} {place} {time}.' (train-scripts/dataset.py)"),
    PromptSet("rgd-y-train", *RGD, "SD/data/y_train.json", NO_LICENCE,
              "1f0612134f47aabc796dc7f092960d395c2820c9c905d4d0b8c0d297482dfdac", "json", 800,
              note="RGD's D_r,train: y_c_train without the nudity word, prompt for prompt"),
    PromptSet("rgd-y-test", *RGD, "SD/data/y_test.json", NO_LICENCE,
              "76e76da070f5aa7957093c9fa0f3df8d76df45595c943763cd421cc586cf462b", "json", 100,
              note="RGD's D_r,test: a vocabulary disjoint from y_train's (eval-scripts/evaluation-batchwise.py)"),
    PromptSet("rgd-y-c-test", *RGD, "SD/data/y_c_test.json", NO_LICENCE,
              "d44748ebaeac82ce69fe1be0f284e885f40d2cdabcc32e4b41b49569e128dd2a", "json", 100,
              note="RGD's forget test set: y_test with a nudity word (evaluation-batchwise.py)"),
    PromptSet("rgd-high-nudity", *RGD, "SD/data/high_nudity_prompts_extended.json", NO_LICENCE,
              "a681c00ff463c2171e9309b3c84959f99b00dd037f9cd7d529f2cf569f5c9a3b", "json", 854,
              note="RGD's NudeNet evaluation: I2P's 854 prompts with nudity_percentage > 0 (= i2p-nudity's prompts)"),
)
PROMPT_SETS: dict[str, PromptSet] = {s.name: s for s in _SETS}


def registry(given: dict[str, PromptSet] | None = None) -> dict[str, PromptSet]:
    """The registry in use: `given`, else this module's PROMPT_SETS (looked up at call time, so tests can swap it)."""
    return given if given is not None else PROMPT_SETS


def get_set(name: str, sets: dict[str, PromptSet] | None = None) -> PromptSet:
    sets = registry(sets)
    if name not in sets:
        raise ConfigError(f"no prompt set {name!r}; known: {', '.join(sorted(sets))}")
    return sets[name]


def file_set(s: PromptSet, sets: dict[str, PromptSet] | None = None) -> PromptSet:
    """The set whose file `s` reads: itself, or for a subset the set it is cut from."""
    return get_set(s.of, sets) if s.of else s


def prompt_set_dir() -> Path:
    return cache_root() / "prompt-sets"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=64)
def _digest(path: str, size: int, mtime_ns: int) -> str:
    """sha256 memoised by (path, size, mtime): a task reads its sets several times per plan."""
    return sha256_file(Path(path))


def fetch_hint(s: PromptSet) -> str:
    if s.downloadable:
        return f"run `{FETCH_PROMPTS}` (or `{FETCH_PROMPTS} --from DIR` with {s.file_name} in DIR)"
    return f"run `{FETCH_PROMPTS} --from DIR` with {s.file_name} from {s.source} in DIR ({s.repo} has no licence: never downloaded)"


def checked_file(s: PromptSet, sets: dict[str, PromptSet] | None = None) -> Path:
    """The cached file of set `s`, its sha256 checked: MissingPromptSetError or PromptSetHashError in one line."""
    f = file_set(s, sets)
    path = prompt_set_dir() / f.file_name
    if not path.is_file():
        raise MissingPromptSetError(f"prompt set {s.name!r} is not in the cache ({path}): {fetch_hint(f)}")
    st = path.stat()
    actual = _digest(str(path), st.st_size, st.st_mtime_ns)
    if f.sha256 != UNPINNED and actual != f.sha256:
        raise PromptSetHashError(f"prompt set {s.name!r}: {path} has sha256 {actual}, expected {f.sha256}; refused "
                                 f"({fetch_hint(f)})")
    return path


def parse(s: PromptSet, data: bytes, sha256: str) -> PromptRows:
    """The set's prompts (and seeds, guidance) from the file's bytes, `where` applied; ValueError on a malformed file."""
    if s.format == "json":
        items = json.loads(data)
        if not isinstance(items, list) or not all(isinstance(p, str) for p in items):
            raise ValueError("a JSON prompt set must be a list of strings")
        rows = PromptRows(s.name, sha256, list(items))
    elif s.format == "csv":
        table = list(csv.DictReader(io.StringIO(data.decode("utf-8"))))
        wanted = [c for c in (s.prompt_column, s.seed_column, s.guidance_column, s.where and s.where[0]) if c]
        lacking = [c for c in wanted if table and c not in table[0]]
        if lacking:
            raise ValueError(f"no column(s) {', '.join(lacking)}")
        if s.where:
            column, op, value = s.where
            if op != ">":
                raise ValueError(f"unknown filter {op!r}")
            table = [r for r in table if float(r[column]) > value]
        rows = PromptRows(s.name, sha256, [r[s.prompt_column] for r in table],
                          [int(float(r[s.seed_column])) for r in table] if s.seed_column else None,
                          [float(r[s.guidance_column]) for r in table] if s.guidance_column else None)
    else:
        raise ValueError(f"unknown format {s.format!r}")
    return rows


def read_prompt_set(name: str, sets: dict[str, PromptSet] | None = None) -> PromptRows:
    """A registry set by name, from the prompt-set cache, checked against its pinned sha256 and row count."""
    s = get_set(name, sets)
    path = checked_file(s, sets)
    return _read(s, str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=32)
def _read(s: PromptSet, path: str, mtime_ns: int) -> PromptRows:
    data = Path(path).read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    try:
        rows = parse(s, data, sha)
    except (ValueError, KeyError, UnicodeDecodeError) as exc:
        raise PromptSetHashError(f"prompt set {s.name!r}: {path} cannot be read ({exc})") from None
    if len(rows.prompts) != s.rows:
        raise PromptSetHashError(f"prompt set {s.name!r}: {path} gives {len(rows.prompts)} prompts, expected {s.rows}")
    return rows


def identity(name: str, sets: dict[str, PromptSet] | None = None) -> str:
    """What a record keeps of a set (and what its setting hash hashes): the name and the pinned file hash."""
    s = get_set(name, sets)
    return f"prompt set {s.name} sha256:{file_set(s, sets).sha256}"
