"""Unlearned models as artifacts (bench/runner/artifacts.py) and `unlearn-bench evaluate`
(bench/runner/evaluate_models.py): saved, loaded back, evaluated to the same numbers, refused when they do not fit."""
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from bench.cli import main
from bench.runner.records import iter_records
from tests.helpers import FAST_DIGITS, write_suite

OPTS = [f"--option={k}={v}" for k, v in FAST_DIGITS.items()]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny run with --save-models: Original and GradDiff on digit 0."""
    root = tmp_path_factory.mktemp("artifacts")
    out = root / "res"
    assert main(["run", "--suite", str(write_suite(root / "s.yaml", ["original", "graddiff"])), "--out", str(out), "--local", "--save-models"]) == 0
    return root, out, {r.label: r for r in iter_records(out)}


def test_a_job_keeps_its_model_with_a_manifest_and_the_record_names_it(saved):
    root, out, recs = saved
    rec = recs["graddiff"]
    art = out / rec["artifact"]["path"]
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["task"] == "mini-digits-class" and manifest["target"] == "0" and manifest["job_id"] == rec.job_id
    assert manifest["base_checkpoints"] == rec["checkpoints"] and manifest["weights_sha256"] == rec["artifact"]["sha256"]
    assert (art / "unet" / "config.json").is_file() and (art / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    assert rec["artifact"]["bytes"] == sum(f.stat().st_size for f in art.rglob("*") if f.is_file())


def test_without_save_models_nothing_is_kept(tmp_path):
    out = tmp_path / "res"
    assert main(["run", "--suite", str(write_suite(tmp_path / "s.yaml", ["original"])), "--out", str(out), "--local"]) == 0
    assert not (out / "models").exists() and "artifact" not in next(iter(iter_records(out))).raw


def test_saved_artifacts_reevaluate_to_the_same_numbers(saved):
    root, out, recs = saved
    again = root / "again"
    assert main(["evaluate", "--results", str(out), "--out", str(again)]) == 0
    new = {r.label: r for r in iter_records(again)}
    for label in ("original", "graddiff"):
        assert new[label].job_id == recs[label].job_id
        assert new[label].metrics == recs[label].metrics and new[label]["instances"] == recs[label]["instances"]  # to the last digit
        assert new[label]["cost"]["unlearn_seconds"] == recs[label]["cost"]["unlearn_seconds"]  # the unlearning it came from
        assert new[label]["reevaluated"]["from"].endswith(f"{recs[label].job_id}.json")


def test_an_external_model_in_each_format_is_evaluated_and_ranked_against_original(saved, tmp_path):
    root, out, recs = saved
    art = out / recs["graddiff"]["artifact"]["path"]
    state = load_file(art / "unet" / "diffusion_pytorch_model.safetensors")
    save_file(state, tmp_path / "w.safetensors")
    torch.save(state, tmp_path / "w.pt")
    ext = tmp_path / "ext"
    formats = {"as-folder": (art / "unet", "diffusers folder"), "as-safetensors": (tmp_path / "w.safetensors", "safetensors"),
               "as-pt": (tmp_path / "w.pt", "state dict")}
    for label, (weights, _) in formats.items():
        assert main(["evaluate", str(weights), "--task", "mini-digits-class", "--target", "0", "--label", label, *OPTS, "--out", str(ext)]) == 0
    got = {r.label: r for r in iter_records(ext)}
    assert set(got) == {*formats, "original"}  # Original was run (once) to score them against
    for label, (_, fmt) in formats.items():
        assert got[label].metrics == recs["graddiff"].metrics and got[label]["external"]["format"] == fmt
    board = (ext / "LEADERBOARD.md").read_text()
    assert "| as-pt | " in board and "external |" in board and "| original |" not in board  # ranked, Original as the reference row


def test_a_partial_state_dict_changes_only_what_it_holds(saved, tmp_path):
    root, out, recs = saved
    state = load_file(out / recs["graddiff"]["artifact"]["path"] / "unet" / "diffusion_pytorch_model.safetensors")
    part = {k: v for k, v in state.items() if "attn" in k or "attention" in k} or dict(list(state.items())[:4])
    torch.save(part, tmp_path / "part.pt")
    ext = tmp_path / "ext"
    assert main(["evaluate", str(tmp_path / "part.pt"), "--task", "mini-digits-class", "--label", "part", *OPTS, "--out", str(ext)]) == 0
    assert next(r for r in iter_records(ext) if r.label == "part")["evaluated_tensors"] == len(part)


def test_weights_that_do_not_fit_are_one_line(saved, tmp_path, capsys):
    root, out, recs = saved
    state = load_file(out / recs["graddiff"]["artifact"]["path"] / "unet" / "diffusion_pytorch_model.safetensors")
    name = next(iter(state))
    cases = {
        "shape": ({**state, name: torch.zeros(3, 3)}, "shape mismatch(es), e.g. " + name),
        "ldm": ({"model.diffusion_model.input_blocks.0.0.weight": torch.zeros(1)}, "CompVis/LDM naming"),
        "nan": ({**state, name: torch.full_like(state[name], float("nan"))}, "NaN or infinite weights"),
    }
    for case, (bad, message) in cases.items():
        torch.save(bad, tmp_path / f"{case}.pt")
        capsys.readouterr()
        assert main(["evaluate", str(tmp_path / f"{case}.pt"), "--task", "mini-digits-class", "--label", case, *OPTS, "--out", str(tmp_path / "e")]) == 1
        err = capsys.readouterr().err
        line = next(line for line in err.splitlines() if "evaluate: mini-digits-class" in line)
        assert message in line, line
    (tmp_path / "code.pt").write_bytes(b"not a checkpoint")
    assert main(["evaluate", str(tmp_path / "code.pt"), "--task", "mini-digits-class", "--label", "x", *OPTS, "--out", str(tmp_path / "e")]) == 2
    assert "is unreadable as weights" in capsys.readouterr().err


def test_an_altered_or_foreign_artifact_is_refused(saved, tmp_path):
    root, out, recs = saved
    copy = tmp_path / "res"
    shutil.copytree(out, copy)
    art = copy / recs["graddiff"]["artifact"]["path"]
    weights = art / "unet" / "diffusion_pytorch_model.safetensors"
    state = load_file(weights)
    name = next(iter(state))
    save_file({**state, name: state[name] + 1.0}, weights)  # a better-looking model swapped in after the job
    manifest = json.loads((copy / recs["original"]["artifact"]["path"] / "manifest.json").read_text())
    (copy / recs["original"]["artifact"]["path"] / "manifest.json").write_text(json.dumps({**manifest, "task": "mini-shapes-concept"}))
    assert main(["evaluate", "--results", str(copy), "--out", str(tmp_path / "again")]) == 1
    got = {r["label"]: r for r in (json.loads(p.read_text()) for p in (tmp_path / "again" / "records").glob("*.json"))}
    assert got["graddiff"]["status"] == "failed" and "not those its record names (altered since the job)" in got["graddiff"]["error"]
    assert got["original"]["status"] == "failed" and "was unlearned on task 'mini-shapes-concept', not 'mini-digits-class'" in got["original"]["error"]


def test_an_sd_artifact_loads_into_a_diffusers_pipeline_and_reevaluates(tmp_path, sd_options_tiny):
    """The saved UNet is a diffusers folder: StableDiffusionPipeline takes it as is."""
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel

    from bench.runner.job import run_job
    from bench.runner.plan import JobSpec

    out = tmp_path / "res"
    spec = JobSpec("t", "sd-nudity", sd_options_tiny, "nudity", "esd-x", "esd-x", {}, 0, {"max_steps": 1})
    rec = run_job(spec, out, models_dir=str(out / "models"))
    assert rec["status"] == "ok", rec.get("error")
    art = out / rec["artifact"]["path"]
    unet = UNet2DConditionModel.from_pretrained(art, subfolder="unet")
    pipe = StableDiffusionPipeline.from_pretrained(sd_options_tiny["model"], unet=unet, safety_checker=None, requires_safety_checker=False)
    saved_weights = load_file(art / "unet" / "diffusion_pytorch_model.safetensors")
    piped = pipe.unet.state_dict()
    assert saved_weights.keys() == piped.keys() and all(torch.equal(saved_weights[k], piped[k]) for k in piped)
    assert main(["evaluate", "--results", str(out), "--out", str(tmp_path / "again")]) == 0
    assert next(iter(iter_records(tmp_path / "again"))).metrics == rec["metrics"]

    # the same UNet as the SD authors release theirs: a diffusers folder, one .safetensors, a .pt state dict
    save_file(saved_weights, tmp_path / "esd.safetensors")
    torch.save(saved_weights, tmp_path / "esd.pt")
    options = [f"--option={k}={v}" for k, v in sd_options_tiny.items()]
    for i, weights in enumerate((art / "unet", tmp_path / "esd.safetensors", tmp_path / "esd.pt")):
        ext = tmp_path / f"ext{i}"
        assert main(["evaluate", str(weights), "--task", "sd-nudity", "--label", "their-esd", *options, "--out", str(ext)]) == 0
        got = {r.label: r for r in iter_records(ext)}
        assert got["their-esd"].metrics == rec["metrics"] and "original" in got


@pytest.fixture
def sd_options_tiny(tmp_path, monkeypatch):
    from tests.t2i_fixtures import TINY_JUDGE, build_tiny_openclip, build_tiny_sd

    monkeypatch.setenv("UNLEARN_BENCH_CACHE", str(tmp_path / "cache"))
    model = build_tiny_sd(tmp_path / "tiny-sd")
    index = {"_class_name": "StableDiffusionPipeline", "scheduler": ["diffusers", "DDPMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
             "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
             "safety_checker": [None, None], "feature_extractor": [None, None]}
    (Path(model) / "model_index.json").write_text(json.dumps(index))  # a full index, as a real SD snapshot has
    return {"model": str(model), "forget_pairs": 2, "eval_prompts": 2, "sample_steps": 2, "clip_model": TINY_JUDGE,
            "clip_pretrained": "random-test", "clip_weights": str(build_tiny_openclip(tmp_path / "judge"))}
