"""Sequential unlearning as a leaderboard view (leaderboard/sequences.py): chain steps stay out of the ranked
tables, and each row's UA, UA on the earlier targets and K per step are read against Original's chain."""
import pytest

from leaderboard.aggregate import aggregate
from leaderboard.build import build
from leaderboard.score import keep, score_columns
from leaderboard.sequences import sequence_tables
from tests.helpers import fixture_records

UA, RA, FLOOR, EARLIER = "UA (digit-cnn)", "RA (digit-cnn)", "FID-floor (digit-cnn feats)", "UA-earlier (digit-cnn)"


def fid(k):
    """The FID column's name follows the step's keep set (its reference loses the erased digits), as in real records."""
    return f"FID (digit-cnn feats, n={450 - 50 * k})"

ORDER = ["0", "5", "8"]


def step(label, k, metrics, method=None, seed=0, status="ok", error=None):
    method = method or label
    return {"job_id": f"mini-digits-class__{label}__t{ORDER[k]}__s{seed}__q{'-'.join(ORDER[: k + 1])}__abc",
            "status": status, "task": "mini-digits-class", "label": label, "method": method,
            "setting_hash": f"{label}{k}" + "0" * 10, "target": ORDER[k], "seed": seed, "task_kind": "class",
            "task_config": {"relearn": False}, "hparams_resolved": {"lr": 1e-4}, "budget": {},
            "metrics": metrics if status == "ok" else {}, "directions": {}, "sequence": ORDER, "error": error}


def original(k):
    return step("original", k, {UA: 0.1, RA: 0.9 - 0.1 * k, fid(k): 10.0, FLOOR: 410.0, **({EARLIER: 0.05} if k else {})})


def chain(label, ras, earlier, fids=(10.0, 10.0, 10.0), seed=0, **kw):
    return [step(label, k, {UA: 0.9, RA: ras[k], fid(k): fids[k], FLOOR: 400.0, **({EARLIER: earlier[k - 1]} if k else {})}, seed=seed, **kw)
            for k in range(3)]


def records():
    return [original(k) for k in range(3)] + chain("graddiff", [0.9, 0.6, 0.35], [0.2, 0.1]) + chain("salun", [0.9, 0.8, 0.7], [0.9, 0.8])


def test_sequence_steps_stay_out_of_the_ranked_tables():
    plain = aggregate(fixture_records())
    with_chains = aggregate(fixture_records() + records())
    rows = lambda tables: {t.task: sorted(t.rows["row"]) for t in tables}  # noqa: E731
    assert rows(with_chains) == rows(plain)
    for a, b in zip(plain, with_chains):
        assert list(a.rows["n"]) == list(b.rows["n"])


def test_each_step_is_read_against_originals_chain_at_the_same_step():
    (t,) = sequence_tables(records())
    assert t.order == tuple(ORDER)
    gd = t.rows.set_index("row").loc["graddiff"]
    for k, ra in enumerate([0.9, 0.6, 0.35]):  # by hand: RA over Original's RA at that step (0.9, 0.8, 0.7)
        cols = score_columns([UA, RA, fid(k), FLOOR])  # each step's own FID column
        assert gd[f"K@{k + 1}"] == pytest.approx(min(1.0, ra / (0.9 - 0.1 * k)))
        assert gd[f"K@{k + 1}"] == pytest.approx(keep({RA: ra, fid(k): 10.0, FLOOR: 400.0}, {RA: 0.9 - 0.1 * k, fid(k): 10.0, FLOOR: 410.0}, cols))
    assert gd["UA-earlier@2"] == pytest.approx(0.2) and gd["UA-earlier@3"] == pytest.approx(0.1)
    assert gd["UA@1"] == pytest.approx(0.9) and "UA-earlier@1" not in t.rows.columns
    assert t.rows.iloc[0]["row"] == "original" and t.rows.set_index("row").loc["original", "K@3"] == pytest.approx(1.0)
    assert list(t.rows["row"]) == ["original", "salun", "graddiff"]  # reference first, then by K after the last step


def test_integrity_lowers_k_under_the_default_rule_only():
    recs = [original(k) for k in range(3)] + chain("uce", [0.9, 0.8, 0.7], [0.9, 0.9], fids=(10.0, 10.0, 205.0))
    (t,) = sequence_tables(recs)
    assert t.rows.set_index("row").loc["uce", "K@3"] == pytest.approx((410.0 - 205.0) / (410.0 - 10.0))
    (t,) = sequence_tables(recs, rule="ra-as")
    assert t.rows.set_index("row").loc["uce", "K@3"] == pytest.approx(1.0)


def test_seeds_average_and_settings_stay_apart():
    recs = records() + chain("graddiff", [0.9, 0.8, 0.55], [0.4, 0.3], seed=1)
    other = chain("graddiff", [0.9, 0.9, 0.7], [0.5, 0.5])
    for r in other:
        r["hparams_resolved"] = {"lr": 1e-3}
    (t,) = sequence_tables(recs + other)
    gd = t.rows[t.rows["label"] == "graddiff"].set_index("row")
    assert sorted(gd.index) == ["graddiff #1", "graddiff #2"]
    two = gd[gd["n"] == 2].iloc[0]
    assert two["UA-earlier@3"] == pytest.approx(0.2) and two["K@3"] == pytest.approx((0.35 + 0.55) / 2 / 0.7)


def test_markdown_has_the_table_the_plot_and_the_failed_steps(tmp_path):
    recs = records() + [step("rgd", 0, {UA: 0.9, RA: 0.9, fid(0): 10.0, FLOOR: 400.0}),
                        step("rgd", 1, {}, status="failed", error="boom: NaN loss"),
                        step("rgd", 2, {}, status="failed", error="sequence step 3 not run: its previous step failed")]
    text = build(recs, "markdown", tmp_path)
    section = text[text.index("## Sequential unlearning"):]
    assert "### mini-digits-class: 0 → 5 → 8" in section
    assert "| graddiff | 0.900 | 0.900 | 0.900 | 0.200 | 0.100 | 1.000 | 0.750 | 0.500 | 1 |" in section
    assert "- rgd step 2 (5) seed 0: boom: NaN loss" in section
    assert "](plots/mini-digits-class-sequence-0-5-8.png)" in section
    assert (tmp_path / "plots" / "mini-digits-class-sequence-0-5-8.png").read_bytes()[:4] == b"\x89PNG"
    assert "## Sequential unlearning" not in build(fixture_records(), "markdown")


def test_a_chain_that_never_finished_still_lists_its_failures():
    recs = [step("crash", k, {}, status="failed", error="method 'crash' exited with code 3" if k == 0 else "its previous step failed") for k in range(3)]
    text = build(recs, "markdown")
    section = text[text.index("## Sequential unlearning"):]
    assert "No finished steps." in section and "- crash step 1 (0) seed 0: method 'crash' exited with code 3" in section
