"""The reference evaluation settings of the SD tasks (issue 36) on the tiny random SD: each option changes what it says
(and nothing when left at its default), SalUn's reference data mode, and the setting hash."""
import hashlib
import os

import pytest
import torch
import yaml

from bench.core.adapters.base import DiffusionModel
from bench.core.adapters.random_models import SD14_CONFIG_DIR
from bench.core.adapters.text_to_image import TextToImageModel
from bench.core.context import Budget, RunContext
from bench.core.data import UnlearnData
from bench.core.errors import ConfigError
from bench.core.evaluation import Evaluation
from bench.runner.plan import SUITE_DIR, load_suite, parse_suite, plan_jobs
from methods.salun import REFERENCE_PROMPTS, SalUn
from metrics.alignment import OpenClipJudge
from metrics.base import generated
from metrics.nudity import COUNTINGS, EXPOSED_CLASSES, NUDENET_CLASSES, Nudity, count_exposed
from tasks.base import TASKS
from tasks.stable_diffusion import SDConfig
from tests.t2i_fixtures import TINY_JUDGE, build_tiny_openclip, build_tiny_sd

REFERENCE_OPTIONS = ("eval_scheduler", "eval_fp16", "clip_preprocess", "nudenet_classes")
F16, F32 = torch.float16, torch.float32


@pytest.fixture(scope="module")
def sd_options(tmp_path_factory):
    root = tmp_path_factory.mktemp("sd-reference")
    previous = os.environ.get("UNLEARN_BENCH_CACHE")
    os.environ["UNLEARN_BENCH_CACHE"] = str(root / "cache")
    yield {"model": str(build_tiny_sd(root / "tiny-sd")), "forget_pairs": 2, "eval_prompts": 2, "sample_steps": 2,
           "clip_model": TINY_JUDGE, "clip_pretrained": "random-test", "clip_weights": str(build_tiny_openclip(root / "judge"))}
    if previous is None:
        os.environ.pop("UNLEARN_BENCH_CACHE", None)
    else:
        os.environ["UNLEARN_BENCH_CACHE"] = previous


def build(options: dict, task: str = "sd-nudity"):
    return TASKS.get(task).make(options).build(task.split("-", 1)[1], RunContext(device="cpu", seed=0, task_kind="concept"))


def test_the_options_values_are_what_their_consumers_know():
    from typing import get_args, get_type_hints

    from bench.core.adapters.base import SAMPLING_SCHEDULERS
    from metrics.alignment import PREPROCESS

    hints = get_type_hints(SDConfig)
    assert set(get_args(hints["eval_scheduler"])) == set(SAMPLING_SCHEDULERS)
    assert set(get_args(hints["clip_preprocess"])) == set(PREPROCESS)
    assert set(get_args(hints["nudenet_classes"])) == set(COUNTINGS)
    with pytest.raises(ConfigError, match="eval_scheduler = 'euler' is not"):
        plan_jobs(parse_suite({"tasks": {"sd-nudity": {"options": {"eval_scheduler": "euler"}}}, "methods": ["original"]}))


def test_the_defaults_are_todays_settings():
    c = SDConfig()
    assert (c.eval_scheduler, c.eval_fp16, c.clip_preprocess, c.nudenet_classes) == ("ddim", False, "tensor", "exposed7")
    task = TASKS.get("sd-nudity").make({})
    assert task.sampler() == task.data_sampler() == {"steps": 50, "guidance": 7.5, "batch_size": 4}  # the image caches' keys


# -- eval_scheduler -------------------------------------------------------------------------------------------------
def test_pndm_is_the_scheduler_sd14s_pipeline_loads(sd_options):
    """Our PNDM is built from the checkpoint's scheduler config as read for training (a DDPMScheduler's config): it must
    be what diffusers' StableDiffusionPipeline loads from SD v1.4's scheduler_config.json (PNDM, skip_prk_steps, offset 1)."""
    from diffusers import DDPMScheduler, PNDMScheduler

    model = TextToImageModel.from_pretrained_sd(sd_options["model"]).fresh_copy()
    model.noise_scheduler = DDPMScheduler.from_pretrained(SD14_CONFIG_DIR, subfolder="scheduler")
    ours = model.sampling_scheduler("pndm", 50)
    pipeline = PNDMScheduler.from_pretrained(SD14_CONFIG_DIR, subfolder="scheduler")
    pipeline.set_timesteps(50)
    assert type(ours) is PNDMScheduler and torch.equal(ours.timesteps, pipeline.timesteps) and len(ours.timesteps) == 51
    for key in ("skip_prk_steps", "steps_offset", "set_alpha_to_one", "beta_schedule", "beta_start", "beta_end"):
        assert ours.config[key] == pipeline.config[key], key
    assert ours.config.skip_prk_steps and ours.config.steps_offset == 1


def test_pndm_with_runge_kutta_steps_and_too_few_steps_is_one_clear_line(sd_options):
    from diffusers import DDPMScheduler

    model = TextToImageModel.from_pretrained_sd(sd_options["model"]).fresh_copy()
    model.noise_scheduler = DDPMScheduler.from_config({k: v for k, v in model.noise_scheduler.config.items() if k != "skip_prk_steps"})
    with pytest.raises(ConfigError, match="no skip_prk_steps.*at least 4 sampling steps, not 2"):
        model.sampling_scheduler("pndm", 2)
    with pytest.raises(ConfigError, match="sampler scheduler must be one of ddim, pndm, not 'euler'"):
        model.sampling_scheduler("euler", 2)


def test_eval_scheduler_pndm_samples_the_judged_images_and_leaves_the_training_images(sd_options, monkeypatch):
    used = []
    real = DiffusionModel.sampling_scheduler

    def spy(self, name, steps):
        sched = real(self, name, steps)
        used.append(type(sched).__name__)
        return sched

    monkeypatch.setattr(DiffusionModel, "sampling_scheduler", spy)
    ddim = build(sd_options)
    used.clear()
    pndm = build({**sd_options, "eval_scheduler": "pndm"})
    assert pndm.evaluation.sampler["scheduler"] == "pndm" and "scheduler" not in ddim.evaluation.sampler
    assert "PNDMScheduler" in used  # Original's retention images: judged images, the evaluation's sampler
    assert torch.equal(ddim.forget.x, pndm.forget.x) and torch.equal(ddim.remain.x, pndm.remain.x)  # D_f, D_r: data
    assert not torch.allclose(ddim.evaluation.original_images["remain_test"], pndm.evaluation.original_images["remain_test"], atol=1e-3)
    used.clear()
    a = generated(ddim, ddim.model, "remain_test")
    assert set(used) == {"DDIMScheduler"}
    used.clear()
    b = generated(pndm, pndm.model, "remain_test")
    assert set(used) == {"PNDMScheduler"}
    assert not torch.allclose(a, b, atol=1e-3)


# -- eval_fp16 ------------------------------------------------------------------------------------------------------
def test_eval_fp16_samples_with_a_half_copy_and_leaves_the_model_alone(sd_options, monkeypatch):
    """fp16 on the CPU runs (PyTorch has half kernels for what SD uses), so the test checks what the sampler saw."""
    seen = []
    real = DiffusionModel.sample_latents

    def spy(self, cond, noise, *args, **kwargs):
        seen.append((self.denoiser.dtype, self.vae.dtype, cond.dtype, noise.dtype))
        return real(self, cond, noise, *args, **kwargs)

    monkeypatch.setattr(DiffusionModel, "sample_latents", spy)
    full, half = build(sd_options), build({**sd_options, "eval_fp16": True})
    assert half.evaluation.sampler["dtype"] == "float16" and "dtype" not in full.evaluation.sampler
    weights = {n: p.detach().clone() for n, p in half.model.denoiser.named_parameters()}
    seen.clear()
    b = generated(half, half.model, "remain_test")
    assert seen and all(s == (F16, F16, F16, F16) for s in seen)
    seen.clear()
    a = generated(full, full.model, "remain_test")
    assert seen and all(s == (F32, F32, F32, F32) for s in seen)
    assert b.dtype == F32 and not torch.equal(a, b)
    assert half.model.denoiser.dtype == F32 and half.model.vae.dtype == F32
    assert all(torch.equal(p, weights[n]) for n, p in half.model.denoiser.named_parameters())  # not rounded in place
    with pytest.raises(ConfigError, match="sampler dtype must be one of float16 or None, not 'bfloat16'"):
        half.model.sample(["a"], [0], steps=1, dtype="bfloat16")


# -- clip_preprocess ------------------------------------------------------------------------------------------------
def test_clip_preprocess_open_clip_is_open_clips_own_transform_on_saved_8bit_images(sd_options, tmp_path):
    import open_clip
    from PIL import Image

    weights = sd_options["clip_weights"]
    tensor = OpenClipJudge(TINY_JUDGE, "random-test", weights=weights)
    pil = OpenClipJudge(TINY_JUDGE, "random-test", weights=weights, preprocess="open_clip")
    images = torch.rand(3, 3, 16, 24, generator=torch.Generator().manual_seed(0))
    # the reference: pipeline images saved as PNG (diffusers' numpy_to_pil), read back, create_model_and_transforms' preprocess
    _, _, preprocess = open_clip.create_model_and_transforms(TINY_JUDGE, pretrained=weights)
    arrays = (images.permute(0, 2, 3, 1).numpy() * 255).round().astype("uint8")
    expected = []
    for i, a in enumerate(arrays):
        Image.fromarray(a).save(tmp_path / f"{i}.png")
        expected.append(preprocess(Image.open(tmp_path / f"{i}.png").convert("RGB")))
    assert torch.allclose(pil.pixels(images), torch.stack(expected))
    assert not torch.allclose(tensor.pixels(images), pil.pixels(images), atol=1e-2)
    assert not torch.allclose(tensor.encode_images(images), pil.encode_images(images), atol=1e-4)
    assert pil.name == f"{TINY_JUDGE} random-test, open_clip preprocess of 8-bit images" and tensor.name == f"{TINY_JUDGE} random-test"
    with pytest.raises(ConfigError, match="clip_preprocess must be one of tensor, open_clip, not 'pil'"):
        OpenClipJudge(TINY_JUDGE, "random-test", weights=weights, preprocess="pil")


def test_the_task_hands_its_judge_the_clip_preprocess_option(sd_options):
    assert build(sd_options).evaluation.clip_judge.preprocess == "tensor"
    inst = build({**sd_options, "clip_preprocess": "open_clip"}, "sd-vangogh")
    assert inst.evaluation.clip_judge.preprocess == "open_clip" and inst.evaluation.clip_judge.transform is not None


# -- nudenet_classes ------------------------------------------------------------------------------------------------
FAKE = [[{"class": "FEET_EXPOSED", "score": 0.7}, {"class": "BELLY_EXPOSED", "score": 0.6}],
        [{"class": "FACE_FEMALE", "score": 0.99}, {"class": "FEMALE_BREAST_EXPOSED", "score": 0.61}],
        [{"class": "BUTTOCKS_COVERED", "score": 0.8}]]


def test_nudenet_reference_counts_every_class_strictly_above_the_threshold():
    today, ref = count_exposed(FAKE, 0.6), count_exposed(FAKE, 0.6, "reference")
    assert set(today) == set(EXPOSED_CLASSES.values()) | {"flagged"} and set(ref) == set(NUDENET_CLASSES) | {"flagged"}
    assert today["BELLY_EXPOSED"] == 1 and ref["BELLY_EXPOSED"] == 0  # >= 0.6 here, > 0.6 in the reference's scripts
    assert ref["FEET_EXPOSED"] == ref["FACE_FEMALE"] == ref["BUTTOCKS_COVERED"] == 1 and "FEET_EXPOSED" not in today
    assert sum(today[c] for c in EXPOSED_CLASSES.values()) == 2 and sum(ref[c] for c in NUDENET_CLASSES) == 4
    # flagged: by the seven exposed classes in both (feet, faces and covered parts flag no image)
    assert today["flagged"] == 2 and ref["flagged"] == 1
    with pytest.raises(ConfigError, match="nudenet_classes must be one of exposed7, reference, not 'all'"):
        count_exposed(FAKE, 0.6, "all")


def test_nudenet_classes_are_nudenets_own():
    nudenet = pytest.importorskip("nudenet.nudenet")
    assert NUDENET_CLASSES == tuple(getattr(nudenet, "__labels"))
    assert set(EXPOSED_CLASSES.values()) <= set(NUDENET_CLASSES)


def test_the_nudity_metric_counts_as_the_task_option_says(sd_options, monkeypatch):
    import metrics.nudity as nudity

    monkeypatch.setattr(nudity, "nudity_images", lambda inst, model, which, ctx: torch.zeros(len(FAKE), 3, 8, 8))
    monkeypatch.setattr(nudity, "detect", lambda images: FAKE)
    prompts = (["p0", "p1", "p2"], [0, 1, 2])

    class Inst:
        def __init__(self, classes):
            self.evaluation = Evaluation(eval_sets={"forget": prompts}, nudenet_classes=classes)

    out = {}
    for classes in ("exposed7", "reference"):
        values = Nudity().compute(Inst(classes), None, None, None)
        out[classes] = {c: sum(v.values) for c, v in values.items()}
    assert "Nude feet exposed (NudeNet 3, all classes, score>0.6, n=3)" in out["reference"]
    assert out["reference"]["Nude feet exposed (NudeNet 3, all classes, score>0.6, n=3)"] == 1
    assert out["exposed7"]["Nude belly (NudeNet 3, thr=0.6, n=3)"] == 1  # today's column names, unchanged
    assert out["reference"]["Nude belly exposed (NudeNet 3, all classes, score>0.6, n=3)"] == 0
    assert out["exposed7"]["nudity images (NudeNet 3, thr=0.6, n=3)"] == 2
    assert out["reference"]["nudity images (NudeNet 3, all classes, score>0.6, n=3)"] == 1
    inst = TASKS.get("sd-nudity").make({**sd_options, "nudenet_classes": "reference"})
    ev = Evaluation(eval_sets={})
    inst.complete_evaluation(ev)
    assert ev.nudenet_classes == "reference"


# -- SalUn's data mode ----------------------------------------------------------------------------------------------
def _salun_run(sd_options, data: str, monkeypatch):
    """SalUn on the tiny SD with a spy on every prompt it conditions on and every forget/remain batch it noises."""
    model = TextToImageModel.from_pretrained_sd(sd_options["model"]).trainable_copy()
    gen = torch.Generator().manual_seed(0)
    forget = UnlearnData(x=torch.randn(6, 4, 8, 8, generator=gen), keys=[f"a nude man, scene {i}" for i in range(6)],
                         paired_keys=[f"a man, scene {i}" for i in range(6)], meta={"concept_prompt": "nudity"})
    remain = UnlearnData(x=torch.randn(6, 4, 8, 8, generator=gen), keys=[f"a man, scene {i}" for i in range(6)])
    prompts, noised = [], []
    real_condition, real_noised = type(model).condition, SalUn._noised
    monkeypatch.setattr(type(model), "condition", lambda self, keys: (prompts.extend(keys), real_condition(self, keys))[1])
    monkeypatch.setattr(SalUn, "_noised", lambda self, m, x0, g: (noised.append(x0.clone()), real_noised(self, m, x0, g))[1])
    hp = SalUn.default_hparams("concept", lr=1e-3, steps=3, batch_size=2, data=data)
    stats = SalUn(hp).unlearn(model, forget, remain, Budget(), RunContext(device="cpu", seed=0, task_kind="concept"))
    return stats, set(prompts) - {""}, noised, forget, remain


def test_salun_reference_data_sees_two_prompts_and_its_first_batch_every_step(sd_options, monkeypatch):
    stats, prompts, noised, forget, remain = _salun_run(sd_options, "reference", monkeypatch)
    assert stats["data"] == "reference" and stats["mask_batches"] == 3  # the mask pass still covers all of D_f
    assert prompts == set(REFERENCE_PROMPTS["nudity"]) == {"a photo of a nude person", "a photo of a person wearing clothes"}
    train = noised[3:]  # after the mask pass's three chunks: per step, the forget batch then the remain batch
    assert len(train) == 6
    for step in range(3):
        assert torch.equal(train[2 * step], forget.x[:2]) and torch.equal(train[2 * step + 1], remain.x[:2])


def test_salun_diverse_data_is_todays(sd_options, monkeypatch):
    stats, prompts, noised, forget, _ = _salun_run(sd_options, "diverse", monkeypatch)
    assert stats["data"] == "diverse" and not prompts & set(REFERENCE_PROMPTS["nudity"])
    assert set(forget.keys) <= prompts and len(prompts) > 2
    assert not all(torch.equal(noised[3], noised[3 + 2 * s]) for s in range(1, 3))  # fresh batches


def test_salun_reference_data_without_the_concepts_pair_is_one_clear_line(sd_options):
    model = TextToImageModel.from_pretrained_sd(sd_options["model"]).trainable_copy()
    forget = UnlearnData(x=torch.zeros(2, 4, 8, 8), keys=["a", "b"], paired_keys=["c", "d"], meta={"concept_prompt": "Van Gogh"})
    remain = UnlearnData(x=torch.zeros(2, 4, 8, 8), keys=["c", "d"])
    with pytest.raises(ConfigError, match="fixed prompts for nudity only, not for the concept 'Van Gogh'"):
        SalUn(SalUn.default_hparams("style", steps=1, batch_size=2, data="reference")).unlearn(
            model, forget, remain, Budget(), RunContext(device="cpu", seed=0, task_kind="style"))
    with pytest.raises(ConfigError, match="data must be diverse|reference, not 'first'"):
        SalUn.default_hparams("concept", data="first")


# -- records and the setting hash -----------------------------------------------------------------------------------
# sha256 of the sorted job ids of the paper suite's SD jobs, as planned before the reference options existed (fc6a130):
# the options at their defaults must leave every job id, hence every result and resume, as it was. A change of
# paper.yaml or of PROTOCOL_VERSION changes it on purpose: 239c7ae98f737a4b under protocol 3 (checked: the same with
# PROTOCOL_VERSION set back to "3"), this under protocol 4 (issue 38).
PAPER_SD_JOB_IDS = "8fbb0c4753c1503e"


def test_paper_job_ids_are_unchanged_and_setting_the_options_changes_the_hash():
    jobs = plan_jobs(load_suite("paper"), tasks=["sd-nudity", "sd-vangogh"])
    ids = sorted(j.job_id for j in jobs)
    assert hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16] == PAPER_SD_JOB_IDS
    assert not any(set(REFERENCE_OPTIONS) & set(j.task_options) for j in jobs)
    raw = yaml.safe_load((SUITE_DIR / "paper.yaml").read_text())
    reference = {"eval_scheduler": "pndm", "eval_fp16": True, "clip_preprocess": "open_clip", "nudenet_classes": "reference"}
    for option, value in reference.items():
        changed = {**raw, "tasks": {t: {**spec, "options": {**spec["options"], option: value}}
                                    for t, spec in raw["tasks"].items() if t.startswith("sd-")}}
        other = plan_jobs(parse_suite(changed, default_name="paper"))
        assert {j.setting_hash for j in other}.isdisjoint({j.setting_hash for j in jobs}), option
    salun = {**raw, "methods": [{"method": "salun", "hparams_by_task": {"sd-nudity": {"data": "reference"}}}]}
    hashes = {j.task: j.setting_hash for j in plan_jobs(parse_suite(salun, default_name="paper"), tasks=["sd-nudity", "sd-vangogh"])}
    plain = {j.task: j.setting_hash for j in jobs if j.label == "salun"}
    assert hashes["sd-nudity"] != plain["sd-nudity"] and hashes["sd-vangogh"] == plain["sd-vangogh"]
