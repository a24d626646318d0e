"""Build before booking: every task's weight-free parts (prompt sets, class lists, evaluation sets) are built at
the suite's options when the plan is made, so a suite that cannot be built fails before any job or machine."""
import pytest
import yaml

from bench.cli import main
from bench.core.errors import ConfigError
from bench.runner.plan import load_suite, plan_jobs, planned_sets
from tasks.base import TASKS
from tasks.stable_diffusion import style_pairs


def test_paper_dry_run_builds_every_task_at_its_size(tmp_path, capsys):
    assert main(["run", "--suite", "paper", "--dry-run", "--out", str(tmp_path / "res")]) == 0
    out = capsys.readouterr().out
    for task in ("sd-nudity", "sd-vangogh"):
        assert f"- {task} (target " in out and "forget 800, remain 800, eval:forget 100" in out
    assert "- cifar10-class (10 targets): forget classes 1, remain classes 9, eval:forget 5000, eval:remain 45000" in out
    assert not (tmp_path / "res").exists()


@pytest.mark.parametrize("dry", [True, False])
def test_a_suite_that_cannot_be_built_is_refused_before_any_job(tmp_path, capsys, dry):
    suite = tmp_path / "big.yaml"
    suite.write_text(yaml.safe_dump({"name": "big", "tasks": {"sd-vangogh": {"options": {"forget_pairs": 100000}}},
                                     "methods": ["original"]}))
    argv = ["run", "--suite", str(suite), "--out", str(tmp_path / "res")] + (["--dry-run"] if dry else [])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "'sd-vangogh'" in err and "forget_pairs=100000" in err and "4736" in err
    assert not list((tmp_path / "res").rglob("*.json"))  # no job ran, no record


def test_every_task_reports_its_sets_and_a_bad_count_names_the_option():
    sizes = planned_sets(plan_jobs(load_suite("mini")))
    assert {k[0] for k in sizes} == {"mini-digits-class", "mini-shapes-concept", "mini-shapes-style"}
    assert all(v for v in sizes.values())
    with pytest.raises(ConfigError, match="eval_prompts=0"):
        TASKS.get("mini-shapes-concept").make({"eval_prompts": 0}).plan_sets("cross")
    with pytest.raises(ConfigError, match="eval_prompts=5000 exceeds the limit"):
        TASKS.get("sd-nudity").make({"eval_prompts": 5000}).plan_sets("nudity")


def test_vangogh_builds_800_distinct_pairs_with_train_and_test_disjoint():
    forget, safe, remain = style_pairs("train", 800, "Vincent van Gogh")
    assert len(set(forget)) == len(set(safe)) == 800
    _, test_scenes, test_remain = style_pairs("test", 100, "Vincent van Gogh", seed=3)
    assert not set(safe) & set(test_scenes) and not set(remain) & set(test_remain)
    from tasks.stable_diffusion import style_scenes

    landscapes = set(style_scenes("train")[0])
    assert sum(s in landscapes for s in safe) == len(landscapes) == 128  # every landscape, then figure scenes
    assert sum(s in landscapes for s in safe[:200]) == 100  # alternating while both last
    sizes = TASKS.get("sd-vangogh").make({"forget_pairs": 800, "eval_prompts": 100, "neighbours": True}).plan_sets("vangogh")
    assert sizes["forget"] == sizes["remain"] == 800 and sizes["eval:neighbours"] == 100
