"""`run --rehearse`: the paper suite's own jobs, end to end through the harness, on tiny stand-ins of its models and data."""
import json
import pickle

import pytest

from bench.core.errors import MissingDataError
from bench.runner.plan import load_suite, plan_jobs
from bench.runner.rehearsal import REHEARSAL_STEPS, World, ensure_world, rehearse_suite
from tasks.cifar.data import load_cifar10

# one job per task and per kind of method, each task with its Original (the score's reference): RGD's restricted
# gradient (class), UCE's closed-form edit and ESD's guidance distillation (concept), SalUn's masked fine-tuning (style).
# CA's 1,000 anchor images take minutes even on the stand-ins: the full rehearsal runs it, CI does not
SLICE = {
    "cifar10-class": ("original", "rgd"),
    "sd-nudity": ("original", "uce", "esd-x"),
    "sd-vangogh": ("original", "salun"),
}


def key(job):
    return (job.task, job.target, job.label, job.seed)


def test_a_rehearsal_keeps_the_suites_jobs_and_option_values(tmp_path):
    paper = load_suite("paper")
    rehearsal = rehearse_suite(paper, World(tmp_path / "world"))
    plain, rehearsed = plan_jobs(paper), plan_jobs(rehearsal)
    assert [key(j) for j in rehearsed] == [key(j) for j in plain]  # the same job list
    for job in rehearsed:
        given = next(t for t in paper.tasks if t.task == job.task).options
        assert {k: job.task_options[k] for k in given} == given  # the suite's option values stay
        assert job.rehearsal and job.budget["max_steps"] == REHEARSAL_STEPS
    assert not {j.job_id for j in rehearsed} & {j.job_id for j in plain}  # never a result's row or record
    sd = next(j for j in rehearsed if j.task == "sd-vangogh")
    assert sd.task_options["forget_pairs"] == 800 and sd.task_options["model"] == str(tmp_path / "world" / "sd")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("UNLEARN_BENCH_CACHE", str(tmp_path_factory.mktemp("rehearsal-cache")))
    load_cifar10.cache_clear()
    yield ensure_world()
    mp.undo()
    load_cifar10.cache_clear()


def test_the_cifar_stand_in_has_cifars_format_and_size_and_its_checksums_hold(world, tmp_path):
    train, test = load_cifar10(str(world.cifar), True), load_cifar10(str(world.cifar), False)
    assert tuple(train.images.shape) == (50_000, 3, 32, 32) and tuple(test.images.shape) == (10_000, 3, 32, 32)
    assert set(train.labels.tolist()) == set(range(10))
    bad = tmp_path / "bad"
    (bad / "cifar-10-batches-py").mkdir(parents=True)
    for f in (world.cifar / "cifar-10-batches-py").iterdir():
        (bad / "cifar-10-batches-py" / f.name).write_bytes(f.read_bytes())
    batch = bad / "cifar-10-batches-py" / "data_batch_1"
    data = pickle.loads(batch.read_bytes())
    data["labels"][0] = (data["labels"][0] + 1) % 10  # one label changed: torchvision's md5 check must refuse it
    batch.write_bytes(pickle.dumps(data))
    with pytest.raises(MissingDataError, match="corrupted"):
        load_cifar10(str(bad), True)


@pytest.mark.slow
def test_a_slice_of_the_paper_rehearsal_runs_through_the_harness(world, tmp_path):
    """Paper jobs of each task and kind of method, on Ray, in method processes, with records, voucher and leaderboard."""
    from bench.runner.evaluator import write_leaderboard
    from bench.runner.records import scan_records
    from bench.runner.scheduler import run_ray

    jobs = [j for j in plan_jobs(rehearse_suite(load_suite("paper"), world))
            if j.label in SLICE[j.task] and j.seed == 0 and j.target in ("0", "nudity", "vangogh")]
    assert sorted((j.task, j.label) for j in jobs) == sorted((t, m) for t, ms in SLICE.items() for m in ms)
    out = tmp_path / "results"
    run_ray(jobs, str(out))
    records, ignored = scan_records(str(out))
    assert not ignored and len(records) == len(jobs)
    failed = {r.job_id: r.error for r in records if not r.ok}
    assert not failed, failed
    assert all(r.rehearsal for r in records)
    raw = [json.loads(p.read_text()) for p in (out / "records").glob("*.json")]
    assert all(r["rehearsal"] is True and r["budget"]["max_steps"] == REHEARSAL_STEPS for r in raw)
    assert any("stand-in" in r["checkpoints"].get("cifar10-data", "") for r in raw if r["task"] == "cifar10-class")
    text = write_leaderboard(str(out), echo=False)
    assert text.startswith("# unlearn-bench leaderboard — REHEARSAL") and "Rehearsal, not results" in text
    assert "No scores" not in text  # every task's records are scored (sd-nudity's forget column included)


def test_the_paper_reference_rehearsal_builds_with_the_reference_sets(tmp_path, monkeypatch):
    """`run --suite paper-reference --rehearse` plans on the prompt-set cache: the reference sizes in full for the dry run,
    cut to the rehearsal's eval_images for the jobs; without the files, one line naming the set and the fetch command."""
    from bench.core.prompt_sets import MissingPromptSetError
    from bench.runner.plan import planned_sets
    from tests.prompt_fixtures import reference_stand_ins

    monkeypatch.setenv("UNLEARN_BENCH_CACHE", str(tmp_path / "cache"))
    reference_stand_ins(monkeypatch, cache=False)
    suite = load_suite("paper-reference")
    with pytest.raises(MissingPromptSetError, match=r"prompt set 'rgd-y-c-train' is not in the cache .*fetch prompts --from DIR"):
        plan_jobs(suite)
    reference_stand_ins(monkeypatch)
    full = {task: sizes for (task, _, _), sizes in planned_sets(plan_jobs(suite)).items()}
    assert full["sd-nudity"] == {"forget": 800, "remain": 800, "eval:forget": 100, "eval:remain_train": 800, "eval:remain_test": 100,
                                 "eval:attack": 142, "eval:nudity": 854, "eval:retention_floor": 100,
                                 "eval:safe_twins": 100}  # RGD's y_test, the twins of y_c_test (AS-safe)
    assert full["sd-vangogh"]["eval:forget"] == full["sd-vangogh"]["eval:attack"] == 50
    jobs = plan_jobs(rehearse_suite(suite, World(tmp_path / "world")))
    cut = {task: sizes for (task, _, _), sizes in planned_sets(jobs).items()}
    assert cut["sd-nudity"]["forget"] == 800 and cut["sd-nudity"]["eval:nudity"] == cut["sd-nudity"]["eval:attack"] == 2
    nudity = next(j for j in jobs if j.task == "sd-nudity")
    assert nudity.given_checkpoints["forget_set"].startswith("prompt set rgd-y-c-train sha256:")
