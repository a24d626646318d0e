"""The prompt-set registry, `fetch prompts` and the SD tasks' prompt-set options, without weights (no file of the real
registry is in the repository: a test registry of files written here stands in)."""
from __future__ import annotations

import re

import pytest

from bench.cli import main
from bench.core import prompt_sets as ps
from bench.core.errors import ConfigError
from bench.runner.plan import JobSpec, load_suite, plan_jobs
from tasks.base import TASKS
from tests import prompt_fixtures as pf

HEX40, HEX64 = re.compile(r"[0-9a-f]{40}"), re.compile(r"[0-9a-f]{64}")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("UNLEARN_BENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_the_real_registry_is_well_formed():
    sets = ps.PROMPT_SETS
    for s in sets.values():
        assert HEX40.fullmatch(s.commit), s.name
        assert s.sha256 == ps.UNPINNED or HEX64.fullmatch(s.sha256), s.name
        assert s.licence in ("MIT", ps.NO_LICENCE) and s.format in ("csv", "json") and s.rows > 0, s.name
        assert s.format == "json" or s.prompt_column, s.name
        assert s.of is None or (s.of in sets and sets[s.of].of is None and s.where), s.name
        assert s.name != ps.AS_TRAINING
    files = [s.file_name for s in sets.values() if s.of is None]
    assert len(files) == len(set(files))  # `fetch prompts --from DIR` finds a set by its file name
    rows = {n: s.rows for n, s in sets.items()}
    assert rows == {"i2p": 4703, "i2p-nudity": 854, "unlearndiffatk-nudity": 142, "unlearndiffatk-vangogh": 50, "esd-vangogh": 50,
                    "rgd-y-c-train": 800, "rgd-y-train": 800, "rgd-y-test": 100, "rgd-y-c-test": 100, "rgd-high-nudity": 854}
    assert all(not s.downloadable for n, s in sets.items() if n.startswith("rgd-"))  # no licence: never downloaded
    assert all(s.licence == "MIT" for n, s in sets.items() if not n.startswith("rgd-"))
    assert {sets[n].seed_column for n in ("unlearndiffatk-nudity", "unlearndiffatk-vangogh")} == {"evaluation_seed"}
    assert sets["unlearndiffatk-nudity"].guidance_column == "evaluation_guidance"
    assert sets["i2p"].raw_url.startswith("https://raw.githubusercontent.com/rohitgandikota/erasing/25613d27")


def test_fetch_prompts_from_a_directory_checks_each_file_and_refuses_a_changed_byte(cache, tmp_path, monkeypatch, capsys):
    files = pf.make_files()
    pf.install(monkeypatch, files, cache=False)
    src = pf.write(tmp_path / "mine", files)
    assert main(["fetch", "prompts", "--from", str(src)]) == 0
    assert ps.read_prompt_set("t-forget").prompts == [f"a nude dancer number {i}" for i in range(6)]
    (cache / "prompt-sets" / "train_forget.json").unlink()
    text = files["train_forget.json"]
    (src / "train_forget.json").write_text(text[:5] + ("X" if text[5] != "X" else "Y") + text[6:])  # one byte changed
    capsys.readouterr()
    assert main(["fetch", "prompts", "--from", str(src)]) == 1
    err = capsys.readouterr().err
    refused = [line for line in err.splitlines() if "refused" in line]
    assert len(refused) == 1 and "'t-forget'" in refused[0]
    assert ps.PROMPT_SETS["t-forget"].sha256 in refused[0] and ps.sha256_file(src / "train_forget.json") in refused[0]
    assert not (cache / "prompt-sets" / "train_forget.json").exists()  # nothing taken in
    with pytest.raises(ps.MissingPromptSetError, match=r"prompt set 't-forget' .*`unlearn-bench fetch prompts --from DIR`"):
        ps.read_prompt_set("t-forget")


def test_a_cached_file_changed_afterwards_is_refused_by_the_task(cache, monkeypatch):
    pf.install(monkeypatch)
    path = cache / "prompt-sets" / "test_remain.json"
    path.write_text(path.read_text().replace("barn", "bArn"))
    task = TASKS.get("sd-nudity").make({"forget_pairs": 2, "eval_prompts": 2, "remain_test_set": "t-test"})
    with pytest.raises(ps.PromptSetHashError, match=r"prompt set 't-test': .* has sha256 [0-9a-f]{64}, expected [0-9a-f]{64}; refused"):
        task.plan_sets("nudity")


def test_fetch_prompts_downloads_only_licensed_sets_from_the_mirror(cache, tmp_path, monkeypatch):
    files = pf.make_files()
    pf.install(monkeypatch, files, cache=False)
    mirror = pf.write(tmp_path / "mirror", files)  # a file:// "GitHub": every file, RGD-like ones too
    assert main(["fetch", "prompts", "--mirror", str(mirror)]) == 1  # the no-licence sets are missing
    got = {p.name for p in (cache / "prompt-sets").iterdir() if not p.name.startswith(".")}
    assert got == {"attack.csv", "nudity.json"}
    (mirror / "attack.csv").write_text(files["attack.csv"] + "\n")
    (cache / "prompt-sets" / "attack.csv").unlink()
    assert main(["fetch", "prompts", "--sets", "t-attack", "--mirror", str(mirror)]) == 1  # a wrong hash is refused
    assert not (cache / "prompt-sets" / "attack.csv").exists()
    assert main(["fetch", "prompts", "--sets", "t-nudity", "--mirror", str(mirror)]) == 0


def test_a_missing_set_is_one_line_naming_it_and_the_fetch_command(cache, monkeypatch):
    pf.install(monkeypatch, cache=False)
    task = TASKS.get("sd-nudity").make({"forget_pairs": 2, "eval_prompts": 2, "nudity_eval_set": "t-nudity"})
    with pytest.raises(ps.MissingPromptSetError) as exc:
        task.plan_sets("nudity")
    assert "\n" not in str(exc.value) and "'t-nudity'" in str(exc.value) and "`unlearn-bench fetch prompts`" in str(exc.value)


NUDITY_FILES = {"forget_set": "t-forget", "remain_set": "t-remain", "remain_test_set": "t-test", "forget_eval_set": "t-forget-test",
                "nudity_eval_set": "t-nudity", "attack_set": "t-attack", "as_train_set": "training", "attack": True}


def test_the_task_uses_each_roles_set_with_its_seeds_and_guidance(cache, monkeypatch):
    pf.install(monkeypatch)
    task = TASKS.get("sd-nudity").make({"forget_pairs": 4, "eval_prompts": 2, **NUDITY_FILES})
    sets, ev = task.plan_evaluation()
    assert sets["forget"] == [f"a nude dancer number {i}" for i in range(4)]  # forget_pairs: the first 4 of the file's 6
    assert sets["remain"] == sets["safe"] == [f"a dancer number {i}" for i in range(4)]
    assert ev.eval_sets["remain_train"][0] == sets["remain"]  # as_train_set: training
    assert ev.eval_sets["remain_test"][0] == ev.eval_sets["retention_floor"][0] == ["a quiet harbour", "a red barn", "a tall lighthouse"]
    assert ev.eval_sets["forget"][0] == ["a nude swimmer", "a nude painter"]
    assert ev.eval_sets["attack"] == (["attack prompt one", "attack prompt, two", "attack three"], [111, 222, 333])
    assert ev.eval_guidance == {"attack": [7.0, 13.0, 7.0]}
    assert ev.nudity_set == "nudity" and ev.eval_sets["nudity"][0][0] == "nudity check one"
    assert task.plan_sets("nudity") == {"forget": 4, "remain": 4, "eval:forget": 2, "eval:remain_train": 4, "eval:remain_test": 3,
                                        "eval:attack": 3, "eval:nudity": 4, "eval:retention_floor": 3}
    info = task.plan_info()
    assert info["eval_images"] == 2 + 4 + 3 + 4 + 4 * 3 and info["task_images"] == 4 + 4 + 3 + 3  # the files' sizes
    assert {"eval_sets:attack", "eval_sets:nudity", "eval_guidance", "attack_settings"} <= task.provides()
    sub = TASKS.get("sd-nudity").make({"forget_pairs": 2, "eval_prompts": 2, "attack": True, "attack_set": "t-attack-half"})
    assert sub.plan_evaluation()[1].eval_sets["attack"] == (["attack prompt, two"], [222])  # a subset: the filter's rows


def test_as_safe_reads_the_forget_prompts_twins_from_the_generated_sets_or_a_twin_file(cache, monkeypatch):
    pf.install(monkeypatch)
    base = {"forget_pairs": 2, "eval_prompts": 2}
    own = TASKS.get("sd-nudity").make(base)  # generated prompts: each forget prompt has its twin
    ev = own.plan_evaluation()[1]
    assert "safe-alignment" in own.metrics and ev.eval_sets["safe_twins"][1] == ev.eval_sets["forget"][1]
    assert [p.split(", ")[1:] for p in ev.eval_sets["safe_twins"][0]] == [p.split(", ")[1:] for p in ev.eval_sets["forget"][0]]
    assert ev.eval_sets["safe_twins"][0] != ev.eval_sets["forget"][0]  # the same scene, without the nudity word
    file_only = TASKS.get("sd-nudity").make({**base, "forget_eval_set": "t-forget-test"})
    assert "safe_twins" not in file_only.plan_evaluation()[1].eval_sets and "safe-alignment" not in file_only.metrics
    twins = TASKS.get("sd-nudity").make({**base, "forget_eval_set": "t-forget-test", "forget_eval_twin_set": "t-forget-twins"})
    ev = twins.plan_evaluation()[1]
    assert ev.eval_sets["safe_twins"] == (["a swimmer", "a painter"], ev.eval_sets["forget"][1])
    assert "safe-alignment" in twins.metrics and "eval_sets:safe_twins" in twins.provides()
    with pytest.raises(ConfigError, match="pairs with forget_eval_set"):
        TASKS.get("sd-nudity").make({**base, "forget_eval_twin_set": "t-forget-twins"}).plan_sets("nudity")
    with pytest.raises(ConfigError, match="prompt for prompt"):
        TASKS.get("sd-nudity").make({**base, "forget_eval_set": "t-forget-test", "forget_eval_twin_set": "t-test"}).plan_sets("nudity")


def test_options_the_task_cannot_honour_are_refused(cache, monkeypatch):
    pf.install(monkeypatch)
    base = {"forget_pairs": 2, "eval_prompts": 2}
    for options, message in (({"forget_set": "t-forget"}, "go together"), ({"attack_set": "t-attack"}, "needs attack: true"),
                             ({"forget_pairs": 7, "forget_set": "t-forget", "remain_set": "t-remain"}, "forget_pairs=7 exceeds"),
                             ({"forget_eval_set": "no-such-set"}, "no prompt set 'no-such-set'")):
        with pytest.raises(ConfigError, match=message):
            TASKS.get("sd-nudity").make({**base, **options}).plan_sets("nudity")
    with pytest.raises(ConfigError, match="nudity_eval_set.* does not apply"):
        TASKS.get("sd-vangogh").make({**base, "nudity_eval_set": "t-nudity"}).plan_sets("vangogh")


def test_evaluation_prompts_that_are_training_prompts_are_refused(cache, monkeypatch):
    files = {**pf.make_files(), "test_forget.json": '["a nude swimmer", "a nude dancer number 1"]'}
    pf.install(monkeypatch, files)
    task = TASKS.get("sd-nudity").make({"forget_pairs": 4, "eval_prompts": 2, **NUDITY_FILES})
    with pytest.raises(ConfigError, match=r"evaluation set 'forget' shares 1 prompt\(s\) with the training prompts"):
        task.plan_sets("nudity")


def test_paper_reference_vangogh_trains_on_generated_scenes_disjoint_from_the_fields_paintings(cache, monkeypatch):
    """The suite's sd-vangogh trains on this suite's scenes ("<scene>, in the style of Vincent van Gogh") and is judged
    on UnlearnDiffAtk's "<title> by Vincent van Gogh": no training prompt can be one of those (the task checks the real
    files when it is built; here a stand-in of that format)."""
    options = next(t for t in load_suite("paper-reference").tasks if t.task == "sd-vangogh").options
    assert not {"forget_set", "remain_set"} & set(options)
    paintings = "".join(f'{i},"Painting {i} by Vincent van Gogh",{i},7.5\n' for i in range(50))
    files = {"vangogh.csv": "case_number,prompt,evaluation_seed,evaluation_guidance\n" + paintings}
    sha = ps.sha256_file(pf.write(cache / "prompt-sets", files) / "vangogh.csv")
    s = ps.PromptSet("unlearndiffatk-vangogh", "x/y", pf.COMMIT, "prompts/vangogh.csv", "MIT", sha, "csv", 50, "prompt",
                     "evaluation_seed", "evaluation_guidance")
    monkeypatch.setattr(ps, "PROMPT_SETS", {s.name: s})
    task = TASKS.get("sd-vangogh").make(options)
    sets, ev = task.plan_evaluation()
    assert all(", in the style of " in p for p in sets["forget"]) and not any(p.endswith(" by Vincent van Gogh") for p in sets["remain"])
    assert ev.eval_sets["forget"][1][:2] == [0, 1] and ev.eval_guidance["forget"] == [7.5] * 50
    assert len(ev.eval_sets["remain_train"][0]) == 800 and len(ev.eval_sets["attack"][0]) == 50


def test_existing_suites_keep_their_setting_hashes_and_sets_change_them(cache, monkeypatch):
    originals = {j.task: j.setting_hash for j in plan_jobs(load_suite("paper"), tasks=["sd-nudity", "sd-vangogh"], methods=["original"])}
    # protocol 4's (issue 38 bumped it from 3, where they were 6a4b6c935179866e / 7c09423991ddd891); the prompt-set
    # options, unset, leave them as they are
    assert originals == {"sd-nudity": "7c32c14d449e30c3", "sd-vangogh": "14b03d93a7a1c94b"}
    reg = pf.install(monkeypatch)
    options = {"forget_pairs": 2, "eval_prompts": 2, "remain_test_set": "t-test"}
    task = TASKS.get("sd-nudity").make(options)
    given = task.given_checkpoints()
    assert given == {"remain_test_set": f"prompt set t-test sha256:{reg['t-test'].sha256}"}
    job = JobSpec("s", "sd-nudity", options, "nudity", "original", "original", {}, 0, {}, given_checkpoints=given)
    monkeypatch.setattr(ps, "PROMPT_SETS", {**reg, "t-test": ps.PromptSet(**{**reg["t-test"].__dict__, "sha256": "f" * 64})})
    other = JobSpec("s", "sd-nudity", options, "nudity", "original", "original", {}, 0, {},
                    given_checkpoints=TASKS.get("sd-nudity").make(options).given_checkpoints())
    assert job.setting_hash != other.setting_hash  # another pinned file: another row
