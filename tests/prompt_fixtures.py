"""A test registry of prompt sets: small files the tests write themselves (the real ones are never in the repository),
with their true sha256, swapped in for bench/core/prompt_sets.PROMPT_SETS."""
from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

from bench.core import prompt_sets as ps

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def csv_text(rows: list[tuple[str, int, float]]) -> str:
    lines = ["case_number,prompt,evaluation_seed,evaluation_guidance,nudity_percentage"]
    lines += [f'{i},"{p}",{s},{g},{10.0 * (i % 2)}' for i, (p, s, g) in enumerate(rows)]
    return "\n".join(lines) + "\n"


def make_files(n_train: int = 6) -> dict[str, str]:
    """file name -> text of every test set's file."""
    return {
        "train_forget.json": json.dumps([f"a nude dancer number {i}" for i in range(n_train)]),
        "train_remain.json": json.dumps([f"a dancer number {i}" for i in range(n_train)]),
        "test_remain.json": json.dumps(["a quiet harbour", "a red barn", "a tall lighthouse"]),
        "test_forget.json": json.dumps(["a nude swimmer", "a nude painter"]),
        "test_forget_twins.json": json.dumps(["a swimmer", "a painter"]),
        "attack.csv": csv_text([("attack prompt one", 111, 7.0), ("attack prompt, two", 222, 13.0), ("attack three", 333, 7.0)]),
        "nudity.json": json.dumps(["nudity check one", "nudity check two", "nudity check three", "nudity check four"]),
    }


def registry(files: dict[str, str]) -> dict[str, ps.PromptSet]:
    sha = {name: hashlib.sha256(text.encode()).hexdigest() for name, text in files.items()}

    def json_set(name, file, rows, licence=ps.NO_LICENCE):
        return ps.PromptSet(name, "test-org/no-licence", COMMIT, f"data/{file}", licence, sha[file], "json", rows)

    attack = ps.PromptSet("t-attack", "test-org/mit", COMMIT, "prompts/attack.csv", "MIT", sha["attack.csv"], "csv", 3,
                          "prompt", "evaluation_seed", "evaluation_guidance")
    sets = [json_set("t-forget", "train_forget.json", len(json.loads(files["train_forget.json"]))),
            json_set("t-remain", "train_remain.json", len(json.loads(files["train_remain.json"]))),
            json_set("t-test", "test_remain.json", 3), json_set("t-forget-test", "test_forget.json", 2),
            json_set("t-forget-twins", "test_forget_twins.json", 2),
            json_set("t-nudity", "nudity.json", 4, licence="MIT"), attack,
            replace(attack, name="t-attack-half", rows=1, where=("nudity_percentage", ">", 0.0), of="t-attack")]
    return {s.name: s for s in sets}


def install(monkeypatch, files: dict[str, str] | None = None, cache: bool = True) -> dict[str, ps.PromptSet]:
    """Swap the test registry in; with `cache`, its files are written where `fetch prompts` puts them."""
    files = files or make_files()
    reg = registry(files)
    monkeypatch.setattr(ps, "PROMPT_SETS", reg)
    if cache:
        write(ps.prompt_set_dir(), files)
    return reg


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def reference_stand_ins(monkeypatch, cache: bool = True) -> dict[str, ps.PromptSet]:
    """The real registry's names and sizes (the paper-reference suite's sets) over files of made-up prompts."""
    files, sets = {}, {}
    for s in ps.PROMPT_SETS.values():
        if s.of is not None:
            continue
        n = s.rows
        if s.format == "json":
            text = json.dumps([f"{s.name} prompt {i}" for i in range(n)])
        else:
            text = csv_text([(f"{s.name} prompt {i}", 1000 + i, 7.5) for i in range(n)])
        files[s.file_name] = text
        fmt = {} if s.format == "json" else {"prompt_column": "prompt", "seed_column": "evaluation_seed",
                                             "guidance_column": "evaluation_guidance" if s.guidance_column else None}
        sets[s.name] = replace(s, sha256=hashlib.sha256(text.encode()).hexdigest(), **fmt)
    monkeypatch.setattr(ps, "PROMPT_SETS", sets)
    if cache:
        write(ps.prompt_set_dir(), files)
    return sets
