"""The paired, hierarchical bootstrap and the bands it decides: property tests on hand-made records."""
import math
import random

import numpy as np
import pytest

from bench.core.instances import PerInstance, from_record, instance_ids, to_record
from bench.core.record import RecordError, parse_record
from leaderboard.aggregate import aggregate
from leaderboard.paired import Job, PairedBootstrap, interval
from leaderboard.rank import score_bands, separated_pairs
from leaderboard.score import score, score_array
from leaderboard.uncertainty import bands_from_pairs

TASK = "mini-shapes-concept"
UA, AS = "UA (judge zero-shot, 6 shapes, n=16)", "AS-test (judge, raw cosine, n=16)"
N = 16


def _record(label, target, seed, ua_flags, cosines, method=None):
    """An ok record whose UA and AS-test columns carry their per-instance values."""
    ua = PerInstance.of("forget", instance_ids(range(N), range(20_000, 20_000 + N)), ua_flags)
    at = PerInstance.of("remain_test", instance_ids(range(N), range(40_000, 40_000 + N)), cosines)
    return {
        "job_id": f"{TASK}__{label}__{target}__{seed}", "schema_version": 3, "task": TASK, "task_kind": "concept",
        "label": label, "method": method or label, "setting_hash": (label * 16)[:16], "target": target, "seed": seed,
        "status": "ok", "metrics": {UA: ua.value, AS: at.value}, "directions": {UA: "↑", AS: "↑"},
        "instances": to_record({UA: ua, AS: at}), "task_config": {"eval_prompts": N},
    }


def _world(rows: dict, targets=("cross", "triangle", "circle"), seeds=(0,), noise=0.1, base=None):
    """Records of Original plus `rows` (label -> (UA rate, AS shift)) on shared instances: every job's
    cosines are the same per-instance pattern (shared noise: the prompts, not the methods) plus the row's shift."""
    rng = np.random.default_rng(0)
    recs = []
    for t in targets:
        pattern = 0.3 + noise * rng.standard_normal(N) if base is None else base
        flags_pattern = rng.uniform(size=N)
        recs.append(_record("original", t, 0, (flags_pattern < 0.1).astype(float), pattern))
        for label, (ua, shift) in rows.items():
            for s in seeds:
                recs.append(_record(label, t, s, (flags_pattern < ua).astype(float), pattern + shift))
    return recs


def _table(recs):
    (table,) = aggregate(recs)
    return table


# -- records: per-instance values round-trip and are checked --------------------------------------------

def test_instances_round_trip_and_reduce_to_the_column():
    per = {UA: PerInstance.of("forget", ["0@1", "1@2"], [1.0, 0.0]), "Nude images": PerInstance.of("forget", ["0@1", "1@2"], [3, 1], "sum")}
    back = from_record(to_record(per))
    assert back == per and back[UA].value == 0.5 and back["Nude images"].value == 4
    rec = parse_record(_record("rgd", "cross", 0, [1.0] * N, [0.25] * N))
    assert rec.instances[UA].ids[0] == "0@20000" and rec.instances[AS].value == pytest.approx(0.25)


def test_a_record_whose_instances_do_not_give_its_value_is_refused():
    bad = _record("rgd", "cross", 0, [1.0] * N, [0.25] * N)
    bad["metrics"][UA] = 0.5  # the instances say 1.0
    with pytest.raises(RecordError, match="reduce to"):
        parse_record(bad)
    broken = _record("rgd", "cross", 0, [1.0] * N, [0.25] * N)
    broken["instances"]["columns"][UA]["values"] = [1.0]  # one value for 16 ids
    with pytest.raises(RecordError, match="ids for 1 values"):
        parse_record(broken)


def test_columns_on_one_set_must_agree_on_its_ids():
    with pytest.raises(ValueError, match="disagree"):
        to_record({"a": PerInstance.of("forget", ["0@1"], [1]), "b": PerInstance.of("forget", ["0@2"], [1])})


# -- the maths -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(30))
def test_score_array_is_the_scalar_score_elementwise(seed):
    rng = np.random.default_rng(seed)
    v, o, k, ko = (rng.choice([rng.uniform(-0.2, 1.2), 0.0, 1.0, math.nan, rng.uniform(0, 1)]) for _ in range(4))
    ideal = float(rng.choice([0.0, 1.0]))
    names = {"UA": ("UA (x)", "RA (x)"), "nudity": ("nudity images (x)", "AS (x)")}["UA" if ideal == 1.0 else "nudity"]
    expected = score({names[0]: v, names[1]: k}, {names[0]: o, names[1]: ko})
    got = float(score_array(v, o, k, ko, ideal))
    assert (math.isnan(expected) and math.isnan(got)) or got == pytest.approx(expected, abs=1e-12)


def test_instance_resampling_is_paired_across_rows_and_with_original():
    bs = PairedBootstrap(TASK, ["k"], resamples=500)
    ids = tuple(f"{i}@{i}" for i in range(N))
    vals = np.random.default_rng(1).uniform(size=N)
    a = Job("k", {}, {AS: PerInstance("remain_test", ids, tuple(vals))})
    b = Job("k", {}, {AS: PerInstance("remain_test", ids, tuple(vals + 0.05))})
    ra, rb = bs.column(a, AS), bs.column(b, AS)
    assert np.allclose(rb - ra, 0.05)  # the same instances drawn for both rows in every resample
    assert ra.std() > 0.01  # ... and they are resampled
    assert abs(ra.mean() - vals.mean()) < 0.02  # centred on the job's value


def test_without_instances_a_column_keeps_its_job_value():
    bs = PairedBootstrap(TASK, ["k"], resamples=50)
    assert np.all(bs.column(Job("k", {"FID": 12.5}), "FID") == 12.5)


def test_intervals_are_percentiles_widened_to_the_point():
    assert interval(np.array([0.1, 0.2, 0.3]), 0.5) == (pytest.approx(0.105), 0.5)  # numpy linear quantile at 2.5%: 0.1 + 0.05·0.1
    assert interval(None, 0.5) is None and interval(np.array([math.nan]), 0.2) is None


# -- the verdicts --------------------------------------------------------------------------------------

def test_identical_rows_are_never_separated():
    table = _table(_world({"a": (0.8, -0.02), "b": (0.8, -0.02), "c": (0.8, -0.02)}))
    assert separated_pairs(table) == set()
    assert set(score_bands(table).values()) == {(1, 3)}


def test_a_constant_shift_separates():
    table = _table(_world({"good": (0.9, 0.0), "worse": (0.9, -0.05)}))
    assert separated_pairs(table) == {("good", "worse")}
    assert score_bands(table) == {"good": (1, 1), "worse": (2, 2)}


def test_the_leaderboard_says_which_pairs_are_separated():
    from leaderboard.render import render_task, verdict_text

    table = _table(_world({"good": (0.9, 0.0), "worse": (0.9, -0.05), "twin": (0.9, -0.05)}))
    assert "Paired verdicts: 2 of 3 pairs separated: good > twin, worse." in render_task(table)
    assert verdict_text(["a", "b"], set()) == "Paired verdicts: 0 of 1 pairs separated."


def test_pairing_separates_what_overlapping_intervals_cannot():
    """Large shared noise between jobs (targets differ a lot), a small but consistent gap between rows:
    the rows' own intervals overlap, the paired difference still decides."""
    recs = []
    for t, level in zip(("cross", "triangle", "circle", "square"), (0.15, 0.3, 0.45, 0.6)):
        recs += _world({"good": (0.9, 0.0), "worse": (0.9, -0.02)}, targets=(t,), base=np.full(N, level))
    table = _table(recs)
    rows = table.rows.set_index("row")
    assert rows.loc["worse", "score ci_hi"] > rows.loc["good", "score ci_lo"]  # intervals overlap
    assert separated_pairs(table) == {("good", "worse")}


def test_one_job_rows_are_decided_against_nobody():
    table = _table(_world({"good": (0.95, 0.0), "bad": (0.2, -0.2)}, targets=("cross",)))
    assert separated_pairs(table) == set() and set(score_bands(table).values()) == {(1, 2)}
    assert table.rows.set_index("row")["score ci_lo"].isna().all()  # n = 1: no interval


def test_instance_level_uncertainty_widens_intervals():
    """Three jobs with identical values: job-level resampling alone would give a zero-width interval."""
    table = _table(_world({"a": (0.5, -0.02)}, targets=("cross",), seeds=(0, 1, 2)))
    row = table.rows.set_index("row").loc["a"]
    assert row["score ci_hi"] - row["score ci_lo"] > 0.05
    assert row[f"{UA} ci_hi"] - row[f"{UA} ci_lo"] > 0.1


def test_same_records_same_intervals_in_any_order_and_other_rows_do_not_move_them():
    recs = _world({"a": (0.7, -0.01), "b": (0.6, -0.03)})
    first = _table(recs).rows.set_index("row")[["score ci_lo", "score ci_hi"]]
    random.Random(0).shuffle(recs)
    assert _table(recs).rows.set_index("row")[["score ci_lo", "score ci_hi"]].equals(first)
    more = recs + [r for r in _world({"c": (0.2, -0.1)}) if r["label"] == "c"]
    assert _table(more).rows.set_index("row").loc[["a", "b"], ["score ci_lo", "score ci_hi"]].equals(first.loc[["a", "b"]])


@pytest.mark.parametrize("seed", range(40))
def test_point_rank_always_inside_its_band(seed):
    rng = np.random.default_rng(seed)
    means = {f"m{i}": float(rng.uniform()) for i in range(6)}
    names = list(means)
    above = {(a, b) for a in names for b in names if a != b and means[a] > means[b] and rng.uniform() < 0.5}
    bands = bands_from_pairs(means, above)
    for k, m in means.items():
        point = 1 + sum(1 for o in means.values() if o > m)
        assert bands[k][0] <= point <= bands[k][1]


def test_bands_hand_case():
    means = {"a": 0.9, "b": 0.8, "c": 0.3}
    assert bands_from_pairs(means, {("a", "c"), ("b", "c")}) == {"a": (1, 2), "b": (1, 2), "c": (3, 3)}
    assert bands_from_pairs(means, set()) == {"a": (1, 3), "b": (1, 3), "c": (1, 3)}


def test_every_seed_is_paired_with_originals_one_job_on_its_target():
    """Original runs one seed per target (its images do not depend on it): a row's jobs at the other seeds
    are still resampled with Original's instances, so a row identical to Original has a zero-width interval."""
    t = _table(_world({"clone": (0.1, 0.0), "b": (0.5, 0.0)}, seeds=(0, 1, 2))).rows.set_index("row")
    assert t.loc["original", "n"] == 3 and t.loc["clone", "n"] == 9
    assert t.loc["clone", "score ci_lo"] == t.loc["clone", "score ci_hi"] == 0


# -- hand computations of the resampling maths (each kills a mutant that the behavioural tests above let live) --

def test_a_rows_resampled_mean_is_its_drawn_jobs_weighted_by_how_often_they_were_drawn():
    keys = ["k0", "k1", "k2"]
    bs = PairedBootstrap(TASK, keys, resamples=300)
    vals = {k: np.random.default_rng(i).uniform(size=300) for i, k in enumerate(keys)}
    w = bs.job_counts  # (B, 3); keys sorted as given
    want = (w * np.stack([vals[k] for k in keys], axis=1)).sum(1) / w.sum(1)
    assert np.allclose(bs.mean(vals), want)
    # a row with one of the jobs: the resamples that drew it, else nan; a nan job value counts as not drawn
    one = bs.mean({"k1": vals["k1"]})
    assert np.array_equal(np.isnan(one), w[:, 1] == 0) and np.allclose(one[w[:, 1] > 0], vals["k1"][w[:, 1] > 0])
    holed = bs.mean({"k0": vals["k0"], "k1": np.full(300, np.nan)})
    assert np.allclose(holed[w[:, 0] > 0], vals["k0"][w[:, 0] > 0])
    assert bs.job_counts.sum(1).tolist() == [3.0] * 300  # every resample draws as many jobs as there are


def test_the_paired_difference_is_the_mean_of_per_job_differences_over_shared_jobs():
    bs = PairedBootstrap(TASK, ["k0", "k1", "k2"], resamples=200)
    rng = np.random.default_rng(3)
    a = {k: rng.uniform(size=200) for k in ("k0", "k1", "k2")}
    b = {k: rng.uniform(size=200) for k in ("k0", "k1")}  # b has two of a's jobs
    assert np.allclose(bs.difference(a, b), bs.mean({k: a[k] - b[k] for k in ("k0", "k1")}), equal_nan=True)
    assert bs.difference(a, {"k0": b["k0"]}) is None  # one shared job decides nothing


def test_summed_columns_resample_to_sums_and_averaged_ones_to_means():
    bs = PairedBootstrap(TASK, ["k"], resamples=100)
    ids = tuple(f"{i}@{i}" for i in range(4))
    vals = (0.0, 1.0, 3.0, 6.0)
    job = Job("k", {}, {"n": PerInstance("nudity", ids, vals, "sum"), "m": PerInstance("nudity", ids, vals)})
    counts = bs.instance_counts("k", job.instances["n"])
    assert np.allclose(bs.column(job, "n"), counts @ np.array(vals))
    assert np.allclose(bs.column(job, "m"), counts @ np.array(vals) / 4)
    assert np.isnan(bs.column(job, "absent")).all()


def test_a_row_below_in_table_order_can_be_decided_above_and_an_undecided_pair_is_not():
    """Rows are compared in table order; the verdict may go either way, and a noisy pair decides nothing."""
    table = _table(_world({"worse": (0.9, -0.05), "good": (0.9, 0.0), "lone": (0.9, 0.0)}))
    table.rows = table.rows.iloc[::-1]  # the worse row first
    assert list(table.rows["row"])[0] == "worse"
    table.paired_scores["lone"] = dict(list(table.paired_scores["lone"].items())[:1])  # one job: compared with nobody
    assert separated_pairs(table) == {("good", "worse")}
    rng = np.random.default_rng(7)
    noisy = _table(_world({"p": (0.9, 0.0)}) + [_record("q", t, 0, (rng.uniform(size=N) < 0.9).astype(float),
                                                        0.3 + 0.2 * rng.standard_normal(N)) for t in ("cross", "triangle", "circle")])
    assert separated_pairs(noisy) == set()


def test_bands_count_each_row_decided_above_once_and_skip_rows_without_a_score():
    means = {"a": 0.9, "b": 0.8, "c": 0.3, "d": float("nan")}
    assert bands_from_pairs(means, {("a", "c")}) == {"a": (1, 2), "b": (1, 3), "c": (2, 3)}


def test_without_originals_job_a_score_is_taken_against_originals_fixed_values():
    from leaderboard.score import ScoreColumns

    bs = PairedBootstrap(TASK, ["k"], resamples=100)
    ids = tuple(f"{i}@{i}" for i in range(N))
    rng = np.random.default_rng(5)
    job = Job("k", {}, {UA: PerInstance("forget", ids, tuple((rng.uniform(size=N) < 0.7).astype(float))),
                        AS: PerInstance("remain_test", ids, tuple(0.3 + 0.01 * rng.standard_normal(N)))})
    cols = ScoreColumns(UA, AS, "↑", 1.0)
    got = bs.scores(job, {UA: 0.1, AS: 0.31}, cols)
    assert np.allclose(got, score_array(bs.column(job, UA), 0.1, bs.column(job, AS), 0.31, 1.0), equal_nan=True)
    assert np.isnan(bs.scores(job, {}, cols)).all()  # no Original values: no score


def test_resampled_scores_read_as_safe_against_originals_and_its_floor():
    """Under the safe rule each resample's K takes K_s from the job's resampled AS-safe against Original's (same draw)
    and Original's floor: a job whose forget images are noise (AS-safe at the floor) scores 0 in every resample, one
    that keeps Original's AS-safe scores as under the integrity rule."""
    from leaderboard.score import score_columns

    safe, floor = "AS-safe (x, forget images vs safe-twin prompts, n=32)", "AS-safe-floor (x)"
    bs = PairedBootstrap(TASK, ["k"], resamples=200)
    ids = tuple(f"{i}@{i}" for i in range(N))
    rng = np.random.default_rng(7)
    as_vals = tuple(0.3 + 0.01 * rng.standard_normal(N))

    def job(ua, s):
        return Job("k", {floor: 0.1}, {UA: PerInstance("forget", ids, tuple(float(x) for x in ua)),
                                       AS: PerInstance("remain_test", ids, as_vals), safe: PerInstance("forget", ids, tuple(s))})

    original = job(np.zeros(N), 0.4 + 0.01 * rng.standard_normal(N))
    cols = score_columns([UA, AS, safe, floor])
    assert cols.safe == safe and cols.safe_floor == floor
    noise = bs.scores(job(np.ones(N), np.full(N, 0.1)), original, cols)
    assert np.allclose(noise, 0.0)  # K_s = 0 in every resample
    kept = bs.scores(job(np.ones(N), original.instances[safe].values), original, cols)
    assert np.allclose(kept, bs.scores(job(np.ones(N), original.instances[safe].values), original, score_columns([UA, AS], "integrity")))
    assert np.allclose(kept, 1.0)
