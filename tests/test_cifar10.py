"""cifar10-class end to end on a tiny CIFAR-shaped data set in torchvision's on-disk format.

The real loading paths run: torchvision's CIFAR10 reader (the fake files' checksums are patched in),
the pretrain recipes (tiny UNet preset, ResNet-34 for one epoch), the checkpoint loaders, a tiny
torchscript network saved where clean-fid's Inception file would be, and a tiny open_clip judge.
"""
import hashlib
import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from bench.core.errors import ConfigError, MissingDataError, MissingWeightsError
from bench.runner.job import run_job
from bench.runner.plan import JobSpec, load_suite, plan_jobs
from methods.base import METHODS
from tasks.cifar.data import CIFAR10_CLASSES, load_cifar10
from tests.helpers import method_stage_in_process

PER_CLASS_TRAIN = 10


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_fake_cifar(root: Path, seed: int = 0) -> Path:
    """cifar-10-batches-py pickles: 5 train batches (2 images per class each) + a test batch."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def batch(name, per_class):
        labels = [c for c in range(10) for _ in range(per_class)]
        # class-dependent mean colour + noise, so class features differ
        base = np.array([[(37 * c) % 256, (91 * c) % 256, (173 * c) % 256] for c in labels], dtype=np.float64)
        img = base[:, :, None, None] + rng.normal(0, 30, (len(labels), 3, 32, 32))
        data = img.clip(0, 255).astype(np.uint8).reshape(len(labels), 3072)
        with open(folder / name, "wb") as f:
            pickle.dump({"batch_label": name, "labels": labels, "data": data, "filenames": [f"{i}.png" for i in range(len(labels))]}, f)

    for i in range(1, 6):
        batch(f"data_batch_{i}", PER_CLASS_TRAIN // 5)
    batch("test_batch", 2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": CIFAR10_CLASSES, "num_cases_per_batch": 20, "num_vis": 3072}, f)
    return root


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Fake data (checksums patched into torchvision's list), a cache dir, tiny checkpoints."""
    import torchvision

    from tasks.cifar.models import CifarResNet34, save_classifier
    from tasks.cifar10 import pretrain_cifar10
    from tests.t2i_fixtures import build_tiny_openclip

    root = tmp_path_factory.mktemp("cifar")
    data = write_fake_cifar(root / "data")
    folder = data / "cifar-10-batches-py"
    mp = pytest.MonkeyPatch()
    C = torchvision.datasets.CIFAR10
    mp.setattr(C, "train_list", [[n, _md5(folder / n)] for n, _ in C.train_list])
    mp.setattr(C, "test_list", [[n, _md5(folder / n)] for n, _ in C.test_list])
    mp.setattr(C, "meta", {**C.meta, "md5": _md5(folder / "batches.meta")})
    mp.setenv("UNLEARN_BENCH_CACHE", str(root / "cache"))
    method_stage_in_process(mp)  # the checksums above are patched in this process only
    load_cifar10.cache_clear()
    torch.manual_seed(0)
    tiny_inception = torch.jit.script(TinyInception())
    tiny_inception.save(str(root / "tiny-inception.pt"))
    pretrain_cifar10(out=str(root / "ddpm"), data_root=str(data), preset="tiny", checkpoint_every=2)
    torch.manual_seed(0)  # a random-initialised ResNet-34 saved and loaded like a trained one
    save_classifier(CifarResNet34(), root / "resnet", {"recipe": "random init (test)"})
    options = {
        "data_root": str(data), "base_model": str(root / "ddpm"), "classifier": "resnet34", "classifier_dir": str(root / "resnet"),
        "inception_weights": str(root / "tiny-inception.pt"), "forget_samples": 2, "remain_samples_per_class": 2,
        "sample_steps": 2, "per_class": 2, "neighbour_images_per_class": 1,
    }
    yield {"root": root, "data": data, "options": options, "clip_weights": str(build_tiny_openclip(root / "judge"))}
    mp.undo()
    load_cifar10.cache_clear()


class TinyInception(torch.nn.Module):
    """Stands in for clean-fid's torchscript Inception (same `layers` entry point, 8-d features)."""

    def __init__(self):
        super().__init__()
        self.layers = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 23, stride=23), torch.nn.AdaptiveAvgPool2d(1))

    def forward(self, x):
        return self.layers(x).flatten(1)


def test_torchvision_format_loads(env):
    train = load_cifar10(str(env["data"]), True)
    assert train.images.shape == (100, 3, 32, 32) and train.images.dtype == torch.uint8
    assert train.classes == tuple(CIFAR10_CLASSES) and torch.bincount(train.labels).tolist() == [10] * 10
    x = train.pixels()
    assert x.min() >= -1 and x.max() <= 1 and len(load_cifar10(str(env["data"]), False).labels) == 20


def test_missing_data_is_one_clear_error(tmp_path):
    with pytest.raises(MissingDataError) as e:
        load_cifar10(str(tmp_path / "nowhere"))
    msg = str(e.value)
    assert str(tmp_path / "nowhere") in msg and "unlearn-bench fetch --suite paper" in msg and "\n" not in msg


def test_missing_weights_errors(env, tmp_path):
    from bench.core.context import RunContext
    from tasks.base import TASKS

    ctx = RunContext(device=torch.device("cpu"), seed=0, task_kind="class")
    cases = {
        "base_model": ("pretrain cifar10", {"base_model": str(tmp_path / "no-model")}),
        "classifier": ("pretrain cifar10-classifier", {"classifier_dir": str(tmp_path / "no-clf")}),
        "inception": ("inception-2015-12-05.pt", {"inception_weights": str(tmp_path / "inception-2015-12-05.pt")}),
        "clip": ("does not exist", {"classifier": "clip", "clip_weights": str(tmp_path / "clip.pt")}),
    }
    for needle, opts in cases.values():
        task = TASKS.get("cifar10-class").make({**env["options"], **opts})
        with pytest.raises(MissingWeightsError, match=needle):
            task.build("0", ctx)
    with pytest.raises(ConfigError):
        TASKS.get("cifar10-class").make({"classifier": "vgg"})


def test_job_end_to_end_resnet_judge(env, tmp_path):
    spec = JobSpec("test", "cifar10-class", env["options"], "3", "graddiff", "graddiff", {"batch_size": 4}, 0, {"max_steps": 2})
    rec = run_job(spec, tmp_path)
    assert rec["status"] == "ok", rec.get("traceback")
    assert rec["cost"]["steps"] == 2 and rec["cost"]["images_generated_eval"] == 2 + 9 * 2
    assert set(rec["metrics"]) == {"UA (ResNet-34)", "RA (ResNet-34)", "FID (clean-fid tiny-inception vs CIFAR-10 train, n=18)",
                                   "FID-floor (clean-fid tiny-inception vs CIFAR-10 train, real forgotten class (CIFAR-10 train))"}
    assert all(np.isfinite(v) for v in rec["metrics"].values())
    assert rec["checkpoints"]["cifar10-resnet34"] != "missing" and rec["checkpoints"]["inception"] != "missing"
    # the reference statistics were computed once from the local train images and cached
    assert list((Path(os.environ["UNLEARN_BENCH_CACHE"]) / "fid-stats").glob("cifar10_clean_train_32_*.npz"))


def test_remain_meta_contract(env):
    from bench.core.class_training import ClassDiffusionRecipe
    from bench.core.context import RunContext
    from tasks.base import TASKS
    from tasks.cifar.models import TINY_RECIPE

    task = TASKS.get("cifar10-class").make(env["options"])
    inst = task.build("5", RunContext(device=torch.device("cpu"), seed=0, task_kind="class"))
    meta = inst.remain.meta
    assert len(inst.forget) == 10 and set(inst.forget.keys) == {5} and len(inst.remain) == 90 and 5 not in inst.remain.keys
    assert inst.remain.groups.tolist() == inst.remain.keys and inst.remain.x.shape[1:] == (3, 32, 32)
    assert sorted(meta["neighbours"]) == [c for c in range(10) if c != 5] and meta["per_class"] == 2
    assert meta["class_names"] == CIFAR10_CLASSES
    assert isinstance(meta["pretrain_recipe"], ClassDiffusionRecipe)
    assert json.loads(json.dumps(meta["pretrain_recipe"].to_dict())) == json.loads(json.dumps(TINY_RECIPE.to_dict()))
    again = task.build("5", RunContext(device=torch.device("cpu"), seed=1, task_kind="class"))
    assert again.remain.meta["neighbours"] == meta["neighbours"]  # deterministic


@pytest.mark.skipif("rgd" not in METHODS.names(), reason="rgd not registered")
def test_rgd_narrow_with_clip_judge(env, tmp_path):
    from tests.t2i_fixtures import TINY_JUDGE

    opts = {**env["options"], "classifier": "clip", "clip_model": TINY_JUDGE, "clip_pretrained": "random-test", "clip_weights": env["clip_weights"]}
    spec = JobSpec("test", "cifar10-class", opts, "0", "rgd", "rgd-narrow", {"remain_sampling": "narrow", "batch_size": 4}, 0, {"max_steps": 2})
    rec = run_job(spec, tmp_path)
    assert rec["status"] == "ok", rec.get("traceback")
    assert f"UA (CLIP {TINY_JUDGE} random-test zero-shot, 11 labels)" in rec["metrics"]


def test_zero_shot_noise_label_counts_as_wrong():
    from metrics.classification import predict
    from metrics.clip_classifier import ZeroShotClassifier

    class AxisJudge:  # label i <-> basis vector i; an image is embedded as the basis vector it stores
        name = "axis"

        def encode_texts(self, texts):
            return torch.eye(len(texts))

        def encode_images(self, images01):
            return torch.nn.functional.one_hot(images01[:, 0, 0, 0].long(), 11).float()

    clf = ZeroShotClassifier(AxisJudge(), CIFAR10_CLASSES)
    assert clf.labels[-1] == "random noise" and clf.labels[3] == "a photo of a cat." and "11 labels" in clf.name
    images = torch.zeros(3, 3, 2, 2)
    images[:, 0, 0, 0] = torch.tensor([3.0, 10.0, 7.0])
    pred = predict(clf, images)
    assert pred.tolist() == [3, 10, 7] and not (pred == 3)[1]  # the noise prediction matches no class


def test_class_neighbours_orders_by_centroid_distance():
    from tasks.cifar10 import class_neighbours

    centres = torch.tensor([[0.0, 0], [5, 0], [1, 0], [0, 3], [9, 9]])
    labels = torch.arange(5).repeat_interleave(4)
    feats = centres[labels] + 0.01 * torch.randn(20, 2, generator=torch.Generator().manual_seed(0))
    assert class_neighbours(feats, labels, 0) == [2, 3, 1, 4]
    assert class_neighbours(feats, labels, 4)[0] == 1


def test_fid_against_stats_matches_clean_fid():
    from cleanfid import fid as cleanfid

    from metrics.frechet import fid_from_features, stats_of

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(200, 6)), rng.normal(0.3, 1.2, size=(300, 6))
    assert fid_from_features(a, stats_of(b)) == pytest.approx(cleanfid.fid_from_feats(a, b), rel=1e-6)
    with pytest.raises(ConfigError):
        fid_from_features(a, stats_of(rng.normal(size=(50, 4))))


def test_classifier_training_and_augmentation(env):
    from tasks.cifar.models import ClassifierRecipe, augment_crop_flip, classifier_accuracy, train_classifier

    x = torch.arange(2 * 3 * 32 * 32, dtype=torch.float32).view(2, 3, 32, 32)
    out = augment_crop_flip(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    for i in range(2):  # each output is a (possibly flipped) 32×32 window of the zero-padded input
        padded = torch.nn.functional.pad(x[i], (4, 4, 4, 4))
        windows = [padded[:, r : r + 32, c : c + 32] for r in range(9) for c in range(9)]
        assert any(torch.equal(out[i], w) or torch.equal(out[i], w.flip(-1)) for w in windows)
    train = load_cifar10(str(env["data"]), True)
    model = train_classifier(ClassifierRecipe(epochs=1, batch_size=4), train.unit(torch.arange(4)), train.labels[:4])
    assert 0.0 <= classifier_accuracy(model, train.unit(torch.arange(4)), train.labels[:4]) <= 1.0


def test_training_state_resumes_bit_for_bit(env, tmp_path):
    from bench.core.class_training import ClassDiffusionRecipe, train_class_conditional
    from tasks.cifar.models import TINY_RECIPE

    recipe = ClassDiffusionRecipe(**{**TINY_RECIPE.to_dict(), "steps": 4})
    train = load_cifar10(str(env["data"]), True)
    straight = train_class_conditional(recipe, train.pixels(), train.labels, CIFAR10_CLASSES)

    def crash(step, loss):
        if step == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_class_conditional(recipe, train.pixels(), train.labels, CIFAR10_CLASSES, progress=crash,
                                checkpoint_dir=tmp_path / "state", checkpoint_every=2)
    resumed = train_class_conditional(recipe, train.pixels(), train.labels, CIFAR10_CLASSES,
                                      checkpoint_dir=tmp_path / "state", checkpoint_every=2)
    for (n, p), q in zip(straight.denoiser.state_dict().items(), resumed.denoiser.state_dict().values()):
        assert torch.equal(p, q), n


def test_reference_unet_size_and_flops():
    """The documented 35.7M parameters and the dry-run's forward FLOPs, counted on the meta device."""
    from diffusers import UNet2DModel
    from torch.utils.flop_counter import FlopCounterMode

    from tasks.cifar.models import CIFAR10_UNET, UNET_GFLOPS_PER_IMAGE

    with torch.device("meta"):
        unet = UNet2DModel(**CIFAR10_UNET, num_class_embeds=11)
        with FlopCounterMode(display=False) as fc:
            unet(torch.randn(1, 3, 32, 32), torch.tensor([10]), class_labels=torch.tensor([3]))
    assert sum(p.numel() for p in unet.parameters()) == pytest.approx(35.75e6, rel=1e-3)
    assert fc.get_total_flops() / 1e9 == pytest.approx(UNET_GFLOPS_PER_IMAGE, rel=1e-2)


def test_paper_dry_run_loads_nothing(tmp_path, capsys, monkeypatch):
    from bench.cli import main

    monkeypatch.setenv("UNLEARN_BENCH_DATA", str(tmp_path / "no-data"))
    monkeypatch.setenv("UNLEARN_BENCH_CACHE", str(tmp_path / "no-cache"))
    paper = [m.method for m in load_suite("paper").methods]
    assert paper == ["original", "finetune", "retrain", "graddiff", "salun", "esd-u", "esd-x", "rg", "rgd", "rgd", "uce", "ca"]
    have = list(dict.fromkeys(m for m in paper if m in METHODS.names()))
    assert main(["run", "--suite", "paper", "--dry-run", "--out", str(tmp_path / "res"), "--methods", *have]) == 0
    out = capsys.readouterr().out
    assert "| cifar10-class | original | 10 | 1 | 10 | 1 | 50000 |" in out
    assert "| sd-nudity |" in out and "estimated GPU hours per task" in out
    assert not (tmp_path / "res").exists() and not (tmp_path / "no-cache").exists()


def test_cli_data_root_and_base_model_reach_tasks_that_have_them():
    from argparse import Namespace

    from bench.runner.evaluator import with_cli_task_options

    suite = with_cli_task_options(load_suite("paper"), Namespace(data_root="/d", base_model="/m", tasks=None))
    opts = {t.task: t.options for t in suite.tasks}
    assert opts["cifar10-class"] == {"data_root": "/d", "base_model": "/m"}
    assert "data_root" not in opts["sd-nudity"] and "base_model" not in opts["sd-vangogh"]


@pytest.mark.skipif("rgd" not in METHODS.names(), reason="rgd not registered")
def test_diversity_suite_is_one_entry_per_row():
    jobs = plan_jobs(load_suite("cifar10-diversity"))
    assert {j.label for j in jobs} == {"rgd", "rgd-narrow"} and len(jobs) == 20
    assert {j.label: j.hparams for j in jobs}["rgd-narrow"] == {"remain_sampling": "narrow"}
