"""Sample pictures: a job keeps a strip of its evaluation images in its record; the leaderboard
composes one grid per task (a row per method, forget beside remain) and links it."""
import base64
import io
import json

import numpy as np
import torch
from PIL import Image

from bench.runner.job import execute
from bench.runner.plan import JobSpec
from bench.runner.sample_strip import to_png
from leaderboard.build import build

TINY = {"forget_samples": 4, "remain_samples_per_class": 1, "sample_steps": 2}


def _decode(b64: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))))


def test_a_job_record_carries_a_strip_of_its_eval_images():
    rec = execute(JobSpec("t", "mini-digits-class", TINY, "3", "original", "original", {}, 0, {"max_steps": 2}), device="cpu")
    s = rec["samples"]
    assert "error" not in s and s["sets"] == ["forget", "remain"] and s["per_set"] == [4, 4]
    assert s["keys"][:4] == ["3"] * 4 and "3" not in s["keys"][4:]  # forget class, then spread remain classes
    img = _decode(s["png"])
    assert img.shape[1] == 8 * img.shape[0] and img.std() > 0  # 8 square digits side by side, not blank
    json.dumps(rec)  # stays a JSON record


def _rec(label, target, seed, shade, task="mini-shapes-concept"):
    imgs = torch.full((4, 3, 8, 8), shade)
    imgs[2:, 1] = 1 - shade  # remain half another colour
    return {
        "job_id": f"{task}__{label}__t{target}__s{seed}", "task": task, "task_kind": "concept", "label": label,
        "method": label, "setting_hash": (label * 16)[:16], "target": target, "seed": seed, "status": "ok",
        "metrics": {"UA (c)": shade, "AS (c)": 0.3}, "directions": {"UA (c)": "↑", "AS (c)": "↑"},
        "samples": {"png": base64.b64encode(to_png(imgs)).decode(), "sets": ["forget", "remain_test"],
                    "keys": ["a cross", "a cross", "a ring $x$", "a ring"], "seeds": [20000, 20001, 40000, 40001], "per_set": [2, 2]},
    }


def test_leaderboard_writes_and_links_one_grid_per_task(tmp_path):
    recs = [_rec("original", "cross", 0, 0.1), _rec("rgd", "cross", 1, 0.9), _rec("rgd", "cross", 0, 0.5),
            _rec("esd-x", "ring", 0, 0.7), _rec("rgd-$alpha$", "cross", 0, 0.3)]
    md = build(recs, "markdown", tmp_path / "a")
    grid = tmp_path / "a" / "plots" / "mini-shapes-concept-samples.png"
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "](plots/mini-shapes-concept-samples.png)" in md
    from leaderboard.aggregate import aggregate
    from leaderboard.samples import pick_samples

    (table,) = aggregate(recs)
    target, picked = pick_samples(table, recs)
    assert target == "cross"  # the target most rows have
    by_row = dict(picked)
    assert by_row["esd-x"] is None  # no samples for that target: left out, named in the figure
    assert _decode(by_row["rgd"]["png"])[0, 0, 0] == round(0.5 * 255)  # lowest job seed
    # same records, any order -> same grid bytes
    build(recs[::-1], "markdown", tmp_path / "b")
    assert (tmp_path / "b" / "plots" / grid.name).read_bytes() == grid.read_bytes()


def test_no_samples_no_grid(tmp_path):
    recs = [_rec("original", "cross", 0, 0.1)]
    del recs[0]["samples"]
    md = build(recs, "markdown", tmp_path)
    assert "samples.png" not in md and not (tmp_path / "plots" / "mini-shapes-concept-samples.png").exists()


def test_grid_rows_quote_the_shown_jobs_ua_and_as_safe(tmp_path):
    """Text-to-image records carry AS-safe (forget prompts' images against their safe twins); each grid row
    names the job's UA and AS-safe, while the AS-safe floor stays a reference value, in no table or label."""
    from leaderboard.aggregate import aggregate
    from leaderboard.samples import label_columns, pick_jobs, row_label

    safe, floor = "AS-safe (mini-clip, safe twins, n=8)", "AS-safe-floor (mini-clip, safe twins, n=8)"
    recs = [_rec("original", "cross", 0, 0.1), _rec("rgd", "cross", 0, 0.9), _rec("rgd", "cross", 1, 0.5)]
    for r, value in zip(recs, (0.28, 0.31, 0.35)):
        r["metrics"] |= {safe: value, floor: 0.2}
        r["directions"] |= {safe: "↑", floor: "↑"}
    (table,) = aggregate(recs)
    assert safe in table.columns and floor not in table.columns
    columns = label_columns(table)
    assert columns == ["UA (c)", safe]
    _, picked = pick_jobs(table, recs)
    labels = {row: row_label(row, r, columns) for row, r in picked}
    assert labels["rgd"] == "rgd\nUA 0.900\nAS-safe 0.310"  # the lowest seed's job: the one whose images are shown
    assert labels["original"] == "original\nUA 0.100\nAS-safe 0.280"
    md = build(recs, "markdown", tmp_path)
    assert "](plots/mini-shapes-concept-samples.png)" in md and "| AS-safe ↑ |" in md
    plain = _rec("rgd", "cross", 0, 0.9)  # no AS-safe recorded: the label quotes UA alone
    (t,) = aggregate([plain])
    assert row_label("rgd", pick_jobs(t, [plain])[1][0][1], label_columns(t) + [safe]) == "rgd\nUA 0.900"
