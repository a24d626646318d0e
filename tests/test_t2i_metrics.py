import pytest
import torch

from bench.core.errors import MissingWeightsError
from bench.core.evaluation import Evaluation
from metrics.alignment import OpenClipJudge, alignment_score
from metrics.base import METRICS
from metrics.nudity import EXPOSED_CLASSES, count_exposed, detect
from metrics.retention import paired_cosine_distance
from metrics.zero_shot import zero_shot_predict
from tests.t2i_fixtures import TINY_JUDGE, build_tiny_openclip


@pytest.fixture(scope="session")
def tiny_judge(tmp_path_factory):
    weights = build_tiny_openclip(tmp_path_factory.mktemp("judge"))
    return OpenClipJudge(TINY_JUDGE, "random-test", weights=str(weights))


def test_alignment_score_properties():
    a = torch.randn(5, 8)
    assert alignment_score(a, a) == pytest.approx(1.0, abs=1e-6)
    assert alignment_score(a, -a) == pytest.approx(-1.0, abs=1e-6)  # no clamp
    assert alignment_score(a, 3 * a) == pytest.approx(1.0, abs=1e-6)  # scale-free, no ×100
    with pytest.raises(ValueError):
        alignment_score(a, a[:3])


def test_zero_shot_and_cosine_distance():
    labels = torch.eye(3)
    assert zero_shot_predict(torch.tensor([[0.1, 0.9, 0.0], [1.0, 0.0, 0.2]]), labels).tolist() == [1, 0]
    x = torch.randn(4, 6)
    assert torch.allclose(paired_cosine_distance(x, x), torch.zeros(4), atol=1e-6)
    assert torch.allclose(paired_cosine_distance(x, -x), 2 * torch.ones(4), atol=1e-6)


def test_openclip_judge_loads_local_file(tiny_judge):
    img = tiny_judge.encode_images(torch.rand(3, 3, 40, 48))
    txt = tiny_judge.encode_texts(["a cat", "a dog", "a house"])
    assert img.shape == txt.shape == (3, 32)
    assert torch.allclose(img.norm(dim=-1), torch.ones(3), atol=1e-5)


def test_openclip_missing_weights(tmp_path, monkeypatch):
    monkeypatch.delenv("UNLEARN_BENCH_OPENCLIP_WEIGHTS", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingWeightsError, match=r"open_clip_model.safetensors of laion/CLIP-ViT-B-32-laion2B-s34B-b79K .*`unlearn-bench fetch --suite paper`"):
        OpenClipJudge()
    with pytest.raises(MissingWeightsError, match="does not exist"):
        OpenClipJudge(weights=str(tmp_path / "nope.pt"))


def test_nudenet_counts_real_images_and_threshold():
    # real detector on drawn images: whatever it finds, counting and threshold plumbing must agree
    g = torch.Generator().manual_seed(0)
    images = torch.zeros(3, 3, 96, 96)
    images[0] = 0.8
    images[1, 0, 20:70, 30:60] = 1.0
    images[2] = torch.rand(3, 96, 96, generator=g)
    dets = detect(images)
    assert len(dets) == 3 and all(isinstance(d, list) for d in dets)
    counts = count_exposed(dets, 0.6)
    assert set(counts) == set(EXPOSED_CLASSES.values()) | {"flagged"}
    fake = [[{"class": "BELLY_EXPOSED", "score": 0.7}, {"class": "FACE_FEMALE", "score": 0.99}],
            [{"class": "BELLY_EXPOSED", "score": 0.59}], [{"class": "ARMPITS_EXPOSED", "score": 0.6}]]
    c = count_exposed(fake, 0.6)
    assert c["BELLY_EXPOSED"] == 1 and c["ARMPITS_EXPOSED"] == 1 and c["flagged"] == 2
    assert count_exposed(fake, 0.65)["flagged"] == 1


def test_metrics_registered():
    for name in ("alignment", "nudity", "retention", "zero-shot-ua", "safe-alignment"):
        assert METRICS.get(name)


def test_retention_in_a_declared_feature_space():
    from metrics.retention import Retention

    class Inst:
        evaluation = Evaluation(retention_features=("pixels", lambda x: x.flatten(1)), eval_sets={"remain_test": (["a", "b"], [0, 1])},
                                original_images={"remain_test": torch.ones(2, 3, 4, 4)})

        def samples(self, model, which, make):
            return make()

    class Model:
        def sample(self, keys, seeds, **kw):
            return torch.ones(len(keys), 3, 4, 4) * torch.tensor([1.0, -1.0]).view(2, 1, 1, 1)

    m = Retention()
    (col,) = m.columns(Inst())
    assert col == "Retention dist. (1−cos pixels, vs original, n=2)"
    per = m.compute(Inst(), Model(), None, None)[col]
    assert per.ids == ("0@0", "1@1")
    assert per.values == pytest.approx((0.0, 2.0), abs=1e-6)  # the distance per pair
    assert per.value == pytest.approx(1.0)  # mean of 0 and 2


def test_retention_floor_is_originals_own_images_under_other_seeds():
    from metrics.retention import Retention

    g = torch.Generator().manual_seed(0)
    ref, other = torch.rand(2, 3, 4, 4, generator=g), torch.rand(2, 3, 4, 4, generator=g)

    class Inst:
        evaluation = Evaluation(retention_features=("pixels", lambda x: x.flatten(1)),
                                eval_sets={"remain_test": (["a", "b"], [0, 1]), "retention_floor": (["a", "b"], [5, 6])},
                                original_images={"remain_test": ref, "retention_floor": other})

        def samples(self, model, which, make):
            return make()

    class Model:  # the unlearned model: Original's images exactly
        def sample(self, keys, seeds, **kw):
            return ref.clone()

    m = Retention()
    col, floor = m.columns(Inst())
    assert floor == "Retention-floor (1−cos pixels, original vs original under other seeds, n=2)"
    out = m.compute(Inst(), Model(), None, None)
    assert out[col].value == pytest.approx(0.0, abs=1e-6)
    # by hand: mean over the prompts of 1 − cos(Original's image at its seed, Original's image at the other seed)
    want = float((1 - torch.nn.functional.cosine_similarity(ref.flatten(1), other.flatten(1))).mean())
    assert out[floor] == pytest.approx(want, rel=1e-6) and out[floor] > 0
    Inst.evaluation.eval_sets["retention_floor"] = (["b", "a"], [5, 6])  # not prompt for prompt: refused
    with pytest.raises(ValueError, match="same order"):
        m.compute(Inst(), Model(), None, None)


def test_retention_space_option_and_the_lpips_error(tiny_judge, monkeypatch):
    from bench.core.errors import ConfigError
    from metrics import retention

    class Inst:
        evaluation = Evaluation(clip_judge=tiny_judge, eval_sets={"remain_test": (["a"], [0])})

    for space in ("auto", "clip"):
        Inst.evaluation.retention_space = space
        monkeypatch.setattr(retention, "local_lpips", lambda: None)
        assert retention.Retention().space(Inst()) == f"1−cos {tiny_judge.name} image emb."
    monkeypatch.setattr(retention, "lpips_problem", lambda: "the `lpips` package is not installed (pip install 'unlearn-bench[lpips]')")
    Inst.evaluation.retention_space = "lpips"
    with pytest.raises(MissingWeightsError, match=r"retention_space: lpips, but the `lpips` package is not installed .*retention_space: clip"):
        retention.Retention().space(Inst())
    monkeypatch.setattr(retention, "local_lpips", lambda: object())  # LPIPS available: auto and lpips use it, clip does not
    for space, want in (("auto", "LPIPS alex"), ("lpips", "LPIPS alex"), ("clip", f"1−cos {tiny_judge.name} image emb.")):
        Inst.evaluation.retention_space = space
        assert retention.Retention().space(Inst()) == want
    Inst.evaluation.retention_space = "dreamsim"
    with pytest.raises(ConfigError, match="retention_space must be one of auto, lpips, clip"):
        retention.Retention().space(Inst())


def test_lpips_problem_names_the_missing_backbone(tmp_path, monkeypatch):
    import importlib.util

    from metrics.retention import ALEXNET_FILE, lpips_problem

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "lpips" else real(name, *a))
    assert ALEXNET_FILE in lpips_problem() and str(tmp_path / "checkpoints") in lpips_problem()
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / ALEXNET_FILE).write_bytes(b"")
    assert lpips_problem() is None


def test_as_safe_reads_the_forget_images_against_their_twins_and_its_floor_against_the_others():
    """AS-safe pairs forget image i with twin i (not with the forget prompt, not with another twin); its floor pairs
    Original's forget image i with every twin j != i, by hand; a model whose forget images are unrelated noise lands
    near the floor while Original's own images sit well above it."""
    from metrics.safe_alignment import SafeAlignment, off_diagonal_mean

    class Judge:  # text i -> one-hot axis i; an image -> its flattened pixels' first 3 values (an image "of" prompt i)
        name = "axes"

        def encode_texts(self, texts):
            return torch.stack([torch.nn.functional.one_hot(torch.tensor(int(t[-1])), 3).float() for t in texts])

        def encode_images(self, images):
            return torch.nn.functional.normalize(images.flatten(1)[:, :3], dim=-1)

    original = torch.zeros(3, 3, 1, 1)
    original[:, :, 0, 0] = torch.eye(3) * 0.9 + 0.05  # image i shows twin i (mostly)

    class Inst:
        evaluation = Evaluation(clip_judge=Judge(), eval_sets={"forget": (["nude 2", "nude 0", "nude 1"], [7, 8, 9]),
                                                                "safe_twins": (["twin 0", "twin 1", "twin 2"], [7, 8, 9])},
                                original_images={"forget": original})

        def samples(self, model, which, make):
            assert which == "forget"  # AS-safe reads the forget images: no images of the twins are made
            return make()

    class Model:
        def __init__(self, images):
            self.images = images

        def sample(self, keys, seeds, **kw):
            return self.images

    m = SafeAlignment()
    col, floor = m.columns(Inst())
    assert col.startswith("AS-safe (axes") and floor.startswith("AS-safe-floor (axes")
    out = m.compute(Inst(), Model(original), None, None)
    emb = torch.nn.functional.normalize(original.flatten(1), dim=-1)
    assert out[col].ids == ("0@7", "1@8", "2@9") and out[col].values == pytest.approx(tuple(emb.diagonal().tolist()))
    off = [float(emb[i, j]) for i in range(3) for j in range(3) if i != j]
    assert out[floor] == pytest.approx(sum(off) / len(off)) == pytest.approx(off_diagonal_mean(emb, torch.eye(3)))
    noise = Model(torch.full((3, 3, 1, 1), 0.5))  # the same grey image for every prompt: as related to one twin as to any
    assert out[floor] < m.compute(Inst(), noise, None, None)[col].value < out[col].value
    swapped = Model(original.roll(1, 0))  # each image shows another prompt's twin: below the floor
    assert m.compute(Inst(), swapped, None, None)[col].value < out[floor]
    Inst.evaluation.eval_sets = {"forget": (["nude 2"], [7]), "safe_twins": (["twin 2"], [7])}  # one prompt: no floor
    Inst.evaluation.original_images = {"forget": original[2:]}
    assert list(m.compute(Inst(), Model(original[2:]), None, None)) == [col.replace("n=3", "n=1")]
    Inst.evaluation.eval_sets = {"forget": (["nude 2", "nude 0", "nude 1"], [7, 8, 9]),
                                 "safe_twins": (["twin 0", "twin 1", "twin 2"], [1, 2, 3])}  # not the forget set's seeds
    with pytest.raises(ValueError, match="pair each forget prompt with its safe twin"):
        m.compute(Inst(), Model(original), None, None)
