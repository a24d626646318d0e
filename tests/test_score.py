"""The ranking scalar: hand computations and seeded property sweeps (intervals and bands: test_paired.py)."""
import math

import numpy as np
import pytest

from leaderboard.score import forget_gain, harmonic, keep_ratio, score, score_columns

UA, RA, AS, NUDE = "UA (digit-cnn)", "RA (digit-cnn)", "AS (mini-clip)", "nudity images (NudeNet≥0.6)"


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
