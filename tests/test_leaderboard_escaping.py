"""User-written text (labels, method names, error messages, options) cannot crash or inject into the leaderboard."""
import csv
import hashlib
import io
import json

from leaderboard.build import build

TASK = "mini-shapes-concept"


def _rec(label, seed=0, status="ok", error=None, method=None, metrics=None, hparams=None):
    return {
        "job_id": f"{TASK}__{label}__s{seed}", "task": TASK, "task_kind": "concept", "label": label,
        "method": method or label, "setting_hash": hashlib.sha256(label.encode()).hexdigest()[:16], "target": "cross", "seed": seed,
        "status": status, "error": error, "task_config": {"eval_prompts": 8}, "hparams_resolved": hparams or {},
        "metrics": metrics if metrics is not None else {"UA (shape-cnn)": 0.5, "AS (mini-clip)": 0.3},
        "directions": {"UA (shape-cnn)": "↑", "AS (mini-clip)": "↑"},
    }


def test_mathtext_in_labels_does_not_crash_plots(tmp_path):
    recs = [_rec("original"), _rec("rgd-$\\frac{1}{$"), _rec("cost $5 and $x^{2"), _rec("$\\alpha$-sweep")]
    text = build(recs, "markdown", tmp_path)  # matplotlib mathtext raised ValueError on the unbalanced `$`
    assert (tmp_path / "plots" / f"{TASK}-tradeoff.png").exists()
    assert "| rgd-$\\\\frac{1}{$ |" in text  # the label, as written (backslash escaped for markdown)


def test_markdown_escapes_pipes_and_html():
    recs = [
        _rec("original"),
        _rec("a|b<script>alert(1)</script>&c", hparams={"note": "x|y"}),
        _rec("boom", status="failed", error="RuntimeError: bad | cell <img src=x onerror=alert(1)>\nsecond line"),
    ]
    md = build(recs, "markdown")
    assert "<script>" not in md and "<img" not in md
    assert "a\\|b&lt;script&gt;alert(1)&lt;/script&gt;&amp;c" in md
    assert "bad \\| cell &lt;img src=x onerror=alert(1)&gt; second line" in md  # one line, no raw newline
    assert "x\\|y" in md
    header = next(l for l in md.splitlines() if l.startswith("| method"))
    for line in md.splitlines():
        if line.startswith("| a"):  # the row keeps the table's column count
            assert line.replace("\\|", "").count("|") == header.count("|")


def test_csv_neutralises_formula_cells():
    recs = [_rec("original"), _rec("=HYPERLINK(\"http://x\")"), _rec("+1", method="@sum"), _rec("-2")]
    rows = list(csv.DictReader(io.StringIO(build(recs, "csv"))))
    for r in rows:
        for key in ("row", "label", "method"):
            assert not r[key].startswith(("=", "+", "-", "@")), r[key]
    assert {r["label"] for r in rows} >= {"'=HYPERLINK(\"http://x\")", "'+1", "'-2"}
    assert any(r["method"] == "'@sum" for r in rows)
    assert float(rows[0]["UA (shape-cnn) mean"]) == 0.5  # numbers stay numbers
    # JSON is data, not a spreadsheet: labels come back as written
    assert {r["label"] for r in json.loads(build(recs, "json"))} >= {"=HYPERLINK(\"http://x\")", "-2"}


def test_markdown_links_and_code_spans_cannot_be_injected():
    from leaderboard.escape import md

    assert md("[click](http://evil)") == "[click]\\(http://evil)"
    assert md("![x](http://evil.png)") == "![x]\\(http://evil.png)"
    assert md("a`b\\c") == "a\\`b\\\\c"
    assert md("graddiff [3333cc]") == "graddiff [3333cc]"  # ordinary text reads as written


def test_a_failure_with_terminal_escapes_is_one_short_plain_line():
    ray_error = ("\x1b[36mray::_ray_job()\x1b[39m (pid=123, ip=10.0.0.1)\n  File \"x.py\", line 3\r\n"
                 "KeyboardInterrupt\x07\x1b]0;title\x07" + " frame" * 200)
    md = build([_rec("original"), _rec("boom", status="failed", error=ray_error)], "markdown")
    line = next(l for l in md.splitlines() if l.startswith("- boom"))
    assert "\x1b" not in line and "\x07" not in line and "[36m" not in line and "title" not in line
    assert "ray::_ray_job() (pid=123, ip=10.0.0.1) File \"x.py\", line 3 KeyboardInterrupt frame" in line
    assert len(line) < 500 and line.endswith("…")
