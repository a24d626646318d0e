"""Evaluation seeds have one home (tasks/base.py); their values are part of the protocol: every
method is judged on the same noise, and the original's cached images are keyed by them."""
from tasks.base import (
    CIFAR10_REMAIN_EVAL_SEED,
    CLASS_FORGET_EVAL_SEED,
    MINI_DIGITS_REMAIN_EVAL_SEED,
    SHAPES_HELDOUT_SEED,
    SHAPES_QUALITY_SEED,
    T2I_EVAL_SEEDS,
    seeds_for,
)


def test_offsets_are_the_protocol_values():
    assert CLASS_FORGET_EVAL_SEED == 0
    assert MINI_DIGITS_REMAIN_EVAL_SEED == 10_000
    assert CIFAR10_REMAIN_EVAL_SEED == 1_000_000
    assert list(T2I_EVAL_SEEDS.items()) == [("forget", 20_000), ("remain_train", 30_000), ("remain_test", 40_000)]
    assert SHAPES_QUALITY_SEED == 50_000
    assert SHAPES_HELDOUT_SEED == 10_000_000


def test_seeds_for_counts_up_from_the_offset():
    assert seeds_for(3, 20_000) == [20_000, 20_001, 20_002]
    assert seeds_for(0, 5) == []
    assert seeds_for(4, CLASS_FORGET_EVAL_SEED) == list(range(4))


def test_text_to_image_sets_stay_disjoint_at_their_default_sizes():
    sets = [set(seeds_for(100, o)) for o in T2I_EVAL_SEEDS.values()]  # the paper's 100 prompts per set
    assert sum(map(len, sets)) == len(set().union(*sets))
