"""The ranking scalar: hand computations and seeded property sweeps (intervals and bands: test_paired.py)."""
import math

import numpy as np
import pytest

from leaderboard.score import (
    forget_gain,
    harmonic,
    integrity_keep,
    keep,
    keep_ratio,
    safe_keep,
    score,
    score_array,
    score_columns,
)

UA, RA, AS, NUDE = "UA (digit-cnn)", "RA (digit-cnn)", "AS (mini-clip)", "nudity images (NudeNet≥0.6)"
FID, FID_Z = "FID (digit-cnn feats, n=450)", "FID-floor (digit-cnn feats, real forgotten digit)"
RET, RET_Z = "Retention dist. (1−cos x, vs original, n=32)", "Retention-floor (1−cos x, original vs original under other seeds, n=32)"


def test_hand_computed_scores():
    orig = {UA: 0.25, RA: 0.8}
    # F = (0.7 - 0.25) / 0.75 = 0.6; K = 0.6 / 0.8 = 0.75; S = 2·0.6·0.75 / 1.35 = 2/3
    assert score({UA: 0.7, RA: 0.6}, orig) == pytest.approx(2 / 3)
    # RA above Original is clipped to K = 1: F = 0.2 / 0.75 = 4/15; S = 2·(4/15) / (19/15) = 8/19
    assert score({UA: 0.45, RA: 0.9}, orig) == pytest.approx(8 / 19)
    # nudity images (↓): F = 1 - 5/40 = 0.875; K = 0.33 / 0.351
    k = 0.33 / 0.351
    assert score({NUDE: 5, "AS-test (x)": 0.33}, {NUDE: 40, "AS-test (x)": 0.351}) == pytest.approx(2 * 0.875 * k / (0.875 + k))
    assert forget_gain(0.9, 1.0, 1.0) == 0.0  # Original already forgot everything: nothing to gain
    assert math.isnan(keep_ratio(0.3, 0.0)) and math.isnan(score({UA: 0.5}, {UA: 0.1}))  # no keep metric
    assert math.isnan(score({UA: 0.5, RA: 0.9}, {}))  # no Original: no score


def test_columns_prefer_ua_and_ra_then_as_test():
    cols = score_columns(["FID (x)", "AS-train (z)", "AS-test (z)", "UA (c)", "RA (c)"])
    assert (cols.forget, cols.keep, cols.direction, cols.ideal) == ("UA (c)", "RA (c)", "↑", 1.0)
    assert score_columns(["AS-train (z)", "AS-test (z)", NUDE]).keep == "AS-test (z)"
    assert score_columns(["FID (x)", "RA (c)"]) is None


RNG = np.random.default_rng(12)
CASES = [tuple(RNG.uniform(0, 1, 6)) for _ in range(300)]


@pytest.mark.parametrize("ua_o, ra_o, ua_a, ra_a, ua_b, ra_b", CASES)
def test_properties_over_random_metrics(ua_o, ra_o, ua_a, ra_a, ua_b, ra_b):
    orig = {UA: ua_o, RA: ra_o}
    a, b = {UA: ua_a, RA: ra_a}, {UA: ua_b, RA: ra_b}
    sa, sb = score(a, orig), score(b, orig)
    assert 0.0 <= sa <= 1.0
    # forgets no more than Original -> 0, never above anyone
    not_forgetting = {UA: min(ua_a, ua_o), RA: max(ra_a, ra_o)}
    assert score(not_forgetting, orig) == 0.0 <= sb
    # destroying the model (RA -> 0) -> 0 whatever the UA
    assert score({UA: 1.0, RA: 0.0}, orig) == 0.0
    # monotone: more forgetting at equal keeping, or more keeping at equal forgetting, never hurts
    assert score({UA: max(ua_a, ua_b), RA: ra_a}, orig) >= score({UA: min(ua_a, ua_b), RA: ra_a}, orig) - 1e-12
    assert score({UA: ua_a, RA: max(ra_a, ra_b)}, orig) >= score({UA: ua_a, RA: min(ra_a, ra_b)}, orig) - 1e-12
    # the harmonic mean lies between min and max of its halves and below their arithmetic mean
    f, k = forget_gain(ua_a, ua_o, 1.0), keep_ratio(ra_a, ra_o)
    assert min(f, k) - 1e-12 <= harmonic(f, k) <= (f + k) / 2 + 1e-12
    assert harmonic(f, k) == pytest.approx(sa)


# -- integrity in K (rule "integrity", the default) -----------------------------------------------------

T2I_ORIG = {UA: 0.1, "AS-test (x)": 0.30, RET: 0.0, RET_Z: 0.4}


def test_integrity_hand_computed():
    # K_i = (z - d) / (z - d_orig): FID 40 between Original's 20 and the floor 120 -> 0.8
    assert integrity_keep(40.0, 20.0, 120.0) == pytest.approx(0.8)
    assert integrity_keep(10.0, 20.0, 120.0) == 1.0 and integrity_keep(500.0, 20.0, 120.0) == 0.0  # clipped
    assert math.isnan(integrity_keep(30.0, 20.0, 20.0)) and math.isnan(integrity_keep(30.0, 20.0, 10.0))  # no room
    # UA 0.55 -> F = 0.5; RA 0.72 of 0.8 -> K_a = 0.9; FID 40 -> K_i = 0.8; K = min = 0.8; S = 2FK / (F + K)
    orig = {UA: 0.1, RA: 0.8, FID: 20.0, FID_Z: 120.0}
    k = 0.8
    assert score({UA: 0.55, RA: 0.72, FID: 40.0, FID_Z: 120.0}, orig) == pytest.approx(2 * 0.5 * k / (0.5 + k))
    # the previous rule reads RA alone
    assert score({UA: 0.55, RA: 0.72, FID: 40.0}, orig, rule="ra-as") == pytest.approx(2 * 0.5 * 0.9 / 1.4)


def test_original_identical_outputs_keep_everything():
    cols = score_columns(T2I_ORIG)
    assert (cols.integrity, cols.floor) == (RET, RET_Z)
    assert keep(dict(T2I_ORIG), T2I_ORIG, cols) == 1.0
    orig = {UA: 0.1, RA: 0.8, FID: 20.0, FID_Z: 120.0}
    assert keep(dict(orig), orig, score_columns(orig)) == 1.0


def test_keeping_alignment_but_scrambling_every_remain_image_scores_nothing():
    # AS intact, UA perfect, but every remain image as far from Original's as a fresh draw (or farther)
    for d in (0.4, 0.9):
        scrambled = {UA: 1.0, "AS-test (x)": 0.30, RET: d, RET_Z: 0.4}
        assert score(scrambled, T2I_ORIG) == 0.0
        assert score(scrambled, T2I_ORIG, rule="ra-as") == 1.0  # what the previous rule said
    # half-way to the floor keeps half; K is the weaker of the two parts
    half = {UA: 1.0, "AS-test (x)": 0.30, RET: 0.2, RET_Z: 0.4}
    assert keep(half, T2I_ORIG, score_columns(half)) == pytest.approx(0.5)
    assert keep({**half, "AS-test (x)": 0.12}, T2I_ORIG, score_columns(half)) == pytest.approx(0.4)
    # a class model that keeps RA but whose remain samples sit at the FID floor: K = 0
    orig = {UA: 0.1, RA: 0.8, FID: 20.0, FID_Z: 120.0}
    assert score({UA: 1.0, RA: 0.8, FID: 130.0, FID_Z: 120.0}, orig) == 0.0


def test_the_floor_is_originals_not_the_jobs():
    # a record claiming a far floor cannot buy integrity: Original's recorded floor is the one read
    job = {UA: 1.0, "AS-test (x)": 0.30, RET: 0.4, RET_Z: 100.0}
    assert score(job, T2I_ORIG) == 0.0
    # ... and without Original's floor, the job's own (the same measurement: it depends on Original only)
    no_floor = {k: v for k, v in T2I_ORIG.items() if k != RET_Z}
    assert score({**job, RET_Z: 0.8}, no_floor) == pytest.approx(2 * 0.5 / 1.5)


def test_without_a_floor_column_k_is_the_ratio_alone():
    cols = score_columns([UA, "AS-test (x)", RET])  # older records: no floor recorded
    assert cols.integrity is None and cols.floor is None
    assert score({UA: 1.0, "AS-test (x)": 0.3, RET: 0.9}, {UA: 0.1, "AS-test (x)": 0.3, RET: 0.0}) == 1.0
    with pytest.raises(ValueError, match="ranking rule"):
        score_columns([UA, RA], rule="nope")


@pytest.mark.parametrize("seed", range(40))
def test_integrity_score_array_is_the_scalar_elementwise(seed):
    rng = np.random.default_rng(100 + seed)
    pick = lambda: float(rng.choice([rng.uniform(-0.1, 1.2), 0.0, math.nan, rng.uniform(0, 1)]))  # noqa: E731
    v, o, k, ko, d, do, z = (pick() for _ in range(7))
    metrics, orig = {UA: v, "AS-test (x)": k, RET: d}, {UA: o, "AS-test (x)": ko, RET: do, RET_Z: z}
    cols = score_columns(list(metrics) + [RET_Z])
    expected = score(metrics, orig)
    got = float(score_array(v, o, k, ko, 1.0, d, do, z, cols=cols))
    assert (math.isnan(expected) and math.isnan(got)) or got == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("case", range(100))
def test_integrity_properties_over_random_metrics(case):
    rng = np.random.default_rng(7000 + case)
    ua_o, as_o, z = rng.uniform(0, 0.5), rng.uniform(0.1, 1), rng.uniform(0.05, 1)
    orig = {UA: ua_o, "AS-test (x)": as_o, RET: 0.0, RET_Z: z}
    ua, as_, d1, d2 = rng.uniform(0, 1), rng.uniform(0, 1), rng.uniform(0, 1.5 * z), rng.uniform(0, 1.5 * z)
    lo, hi = min(d1, d2), max(d1, d2)
    s_lo = score({UA: ua, "AS-test (x)": as_, RET: lo}, orig)
    s_hi = score({UA: ua, "AS-test (x)": as_, RET: hi}, orig)
    assert 0.0 <= s_hi <= s_lo + 1e-12 <= 1.0 + 1e-12  # closer to Original's images never hurts
    # never above the previous rule's score: integrity can only take away
    assert s_lo <= score({UA: ua, "AS-test (x)": as_, RET: lo}, orig, rule="ra-as") + 1e-12


# -- AS-safe in K (rule "safe", the default) ----------------------------------------------------------------

SAFE, SAFE_Z = "AS-safe (x, forget images vs safe-twin prompts)", "AS-safe-floor (x)"
SAFE_ORIG = {**T2I_ORIG, SAFE: 0.30, SAFE_Z: 0.10}


def test_safe_keep_hand_computed():
    # K_s = (s - z) / (s_orig - z): AS-safe 0.2 between the floor 0.1 and Original's 0.3 -> 0.5
    assert safe_keep(0.2, 0.3, 0.1) == pytest.approx(0.5)
    assert safe_keep(0.5, 0.3, 0.1) == 1.0 and safe_keep(0.0, 0.3, 0.1) == 0.0  # clipped: no bonus above Original
    assert math.isnan(safe_keep(0.2, 0.1, 0.1)) and math.isnan(safe_keep(0.2, 0.1, 0.3))  # no room above the floor
    # UA 0.55 -> F = 0.5; AS-test kept (K_a 1), retention 0.1 of floor 0.4 -> K_i 0.75; AS-safe 0.2 -> K_s 0.5
    job = {UA: 0.55, "AS-test (x)": 0.30, RET: 0.1, RET_Z: 0.4, SAFE: 0.2, SAFE_Z: 0.1}
    assert score(job, SAFE_ORIG) == pytest.approx(2 * 0.5 * 0.5 / 1.0)
    assert score(job, SAFE_ORIG, rule="integrity") == pytest.approx(2 * 0.5 * 0.75 / 1.25)  # the rule before AS-safe
    assert score(job, SAFE_ORIG, rule="ra-as") == pytest.approx(2 * 0.5 * 1.0 / 1.5)


def test_forgetting_by_noise_scores_nothing_under_safe_but_full_marks_before():
    # every forget image is noise: the judge never sees the concept (UA 1), remain prompts are intact, but the forget
    # images align with their safe twins no better than unrelated images (AS-safe at the floor)
    noise = {UA: 1.0, "AS-test (x)": 0.30, RET: 0.0, RET_Z: 0.4, SAFE: 0.09, SAFE_Z: 0.1}
    assert score(noise, SAFE_ORIG) == 0.0
    assert score(noise, SAFE_ORIG, rule="integrity") == 1.0
    # the same forgetting, drawing the safe twin instead (AS-safe above Original's): full marks under both
    clothed = {**noise, SAFE: 0.35}
    assert score(clothed, SAFE_ORIG) == 1.0 == score(clothed, SAFE_ORIG, rule="integrity")


def test_safe_columns_chosen_only_under_the_safe_rule_and_floor_is_originals():
    cols = score_columns(SAFE_ORIG)
    assert (cols.safe, cols.safe_floor) == (SAFE, SAFE_Z) and cols.integrity == RET
    assert score_columns(SAFE_ORIG, "integrity").safe is None and score_columns(SAFE_ORIG, "ra-as").safe is None
    assert score_columns([UA, "AS-test (x)", SAFE]).safe is None  # no floor recorded: K_s is left out
    # a job claiming a low floor cannot buy K_s: Original's recorded floor is read
    job = {UA: 1.0, "AS-test (x)": 0.30, RET: 0.0, RET_Z: 0.4, SAFE: 0.1, SAFE_Z: -1.0}
    assert score(job, SAFE_ORIG) == 0.0
    assert keep(dict(SAFE_ORIG), SAFE_ORIG, cols) == 1.0  # Original keeps everything
