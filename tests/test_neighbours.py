"""Neighbouring concepts (metrics/neighbours.py, tasks/mini_shapes.py NEIGHBOURS): the set asks for the
target's neighbours only, the judge recognises them in Original's images, and a model that erases more
than the target loses them."""
import os

import pytest
import torch

from bench.core.context import RunContext
from metrics.neighbours import NeighbourAccuracy
from tasks.base import TASKS
from tasks.mini import shapes
from tasks.mini_shapes import MODEL_DIR, NEIGHBOURS, neighbour_set


def test_every_target_has_two_other_neighbours_of_its_kind():
    for target, names in NEIGHBOURS.items():
        vocab = shapes.SHAPES if target in shapes.SHAPES else shapes.STYLES
        assert len(names) == 2 and target not in names and set(names) <= set(vocab), target


@pytest.mark.parametrize("kind,target", [("concept", "cross"), ("style", "swirl")])
def test_the_set_asks_for_the_neighbours_and_says_which(kind, target):
    prompts, truth = neighbour_set(kind, target, 16)
    labels = shapes.SHAPES if kind == "concept" else shapes.STYLES
    assert len(prompts) == len(truth) == 16 and {labels[i] for i in truth} == set(NEIGHBOURS[target])
    for p, i in zip(prompts, truth):
        assert (f" {labels[i]} " in f" {p} ") or (labels[i] == "plain" and " style" not in p)
        assert target not in p.split()


@pytest.mark.skipif(not (MODEL_DIR / "unlearn_bench.json").exists(), reason="committed mini-shapes checkpoint absent")
def test_original_keeps_its_neighbours_and_a_broken_model_does_not(tmp_path):
    previous = os.environ.get("UNLEARN_BENCH_CACHE")
    os.environ["UNLEARN_BENCH_CACHE"] = str(tmp_path)
    try:
        task = TASKS.get("mini-shapes-concept").make({"forget_pairs": 2, "eval_prompts": 16, "eval_sample_steps": 10, "neighbours": True})
        assert "neighbour-accuracy" in task.metrics and "eval_sets:neighbours" in task.provides()
        inst = task.build("cross", RunContext(device="cpu", seed=0, task_kind="concept"))
    finally:
        if previous is None:
            os.environ.pop("UNLEARN_BENCH_CACHE", None)
        else:
            os.environ["UNLEARN_BENCH_CACHE"] = previous
    metric = NeighbourAccuracy()
    (col,) = metric.columns(inst)
    assert col == "NA (mini-shapes-clip-judge zero-shot, neighbours diamond + circle, n=16)"
    original = inst.model.fresh_copy()
    na = metric.compute(inst, original, original, None)[col]
    assert na.set == "neighbours" and len(na.ids) == 16 and na.value >= 0.6  # the judge sees them in Original's images
    broken = inst.model.fresh_copy()
    with torch.no_grad():  # over-erasure at its worst: every prompt now draws the same thing
        for name, p in broken.denoiser.named_parameters():
            if "attn2.to_k" in name or "attn2.to_v" in name:
                p.zero_()
    assert metric.compute(inst, broken, original, None)[col].value < na.value - 0.2
